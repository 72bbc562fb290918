from twisted.application.service import ServiceMaker

routervm = ServiceMaker("routervm", "routervm.tap", "The cloudd virtual router appliance.", "routervm")
