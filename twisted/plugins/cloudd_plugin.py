from twisted.application.service import ServiceMaker

cloudd = ServiceMaker("cloudd", "cloudd.tap", "The cloudd management server (CloudStack query API).", "cloudd")
