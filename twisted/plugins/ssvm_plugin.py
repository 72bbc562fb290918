from twisted.application.service import ServiceMaker

ssvm = ServiceMaker("ssvm", "ssvm.tap", "The cloudd secondary-storage appliance.", "ssvm")
