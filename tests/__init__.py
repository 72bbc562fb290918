"""Tests for cloudd, routervm and ssvm.

Warnings are errors here, as in the house style: a deprecation seen in a test is fixed, not ignored.
"""

import warnings

warnings.simplefilter("error")
# Third-party modules that warn at import time on this Python; not ours to fix.
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"(pymysql|libcloud|cs|scapy)(\..*)?")
warnings.filterwarnings("ignore", category=ResourceWarning)
# twisted.web.static builds a deprecated resource at import time (Twisted's own code).
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"twisted\.web\.static")
