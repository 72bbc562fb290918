"""Safe template and ISO downloads for the secondary-storage appliance.

Small modules, each owning one concern:

* `policy` — which IP addresses a download may connect to (pure);
* `urls` — parsing and checking download URLs, and their log-safe forms (pure);
* `endpoint` — the connect-time check: resolve, check every address, connect to a checked one;
* `checksum` — the `{ALG}hex` syntax and the constant-time comparison (pure);
* `sniff` — image-format detection from the first and last bytes (pure);
* `properties` — `template.properties` writing, reading and the loader-validity rule (pure);
* `writer` — one partial file: writes and hashes off the reactor thread, with back-pressure;
* `fetch` — one HTTP(S) transfer: redirects, size limits, resume, retries;
* `state` — the download state machine and the persisted record;
* `statestore` — the state directory, written atomically and in order off the reactor thread;
* `request` — validation of a start request;
* `layout` — the image-store layout: paths, names, scans, clean-up and capacity;
* `manager` — `DownloadManager`, the service that ties them together.
"""
