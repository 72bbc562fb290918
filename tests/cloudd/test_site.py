"""The API site's access log: values hidden, lines gathered into few log events on the clock."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.logger import LogEvent, formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from cloudd.web.accesslog import redact_uri
from cloudd.web.site import GatheredAccessLog


class GatheredAccessLogTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.events: list[LogEvent] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)
        self.clock = Clock()
        self.sink = GatheredAccessLog(self.clock, delay=0.1)

    def texts(self) -> list[str]:
        return [formatEvent(e) for e in self.events if "access_log" in e]

    def test_lines_are_gathered_for_a_tenth_of_a_second(self) -> None:
        """Lines written within the delay become one event, emitted when the delay is over, in order."""
        self.sink.write("line 1\n")
        self.sink.write("line 2\n")
        self.assertEqual(self.texts(), [])
        self.clock.advance(0.05)
        self.sink.write("line 3\n")
        self.assertEqual(self.texts(), [])
        self.clock.advance(0.05)
        self.assertEqual(self.texts(), ["line 1\nline 2\nline 3"])
        self.sink.write("line 4\n")
        self.clock.advance(0.1)
        self.assertEqual(self.texts(), ["line 1\nline 2\nline 3", "line 4"])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_close_writes_what_is_pending(self) -> None:
        """Stopping the site writes the gathered lines at once and leaves no timer behind."""
        self.sink.write("last\n")
        self.sink.close()
        self.assertEqual(self.texts(), ["last"])
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.sink.close()
        self.assertEqual(self.texts(), ["last"])


class RedactTests(SynchronousTestCase):
    def test_values_hidden_but_command_and_response(self) -> None:
        """Every parameter value but command and response is replaced; names stay."""
        uri = b"/client/api?command=login&username=u&password=s3cret&response=json&signature=abc%3D&flag"
        self.assertEqual(redact_uri(uri),
                         b"/client/api?command=login&username=***&password=***&response=json&signature=***&flag")
        self.assertEqual(redact_uri(b"/client/api"), b"/client/api")
