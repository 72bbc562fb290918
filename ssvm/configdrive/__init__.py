"""The config drive (`config-2` ISO) of one VM: what goes on it, how it is mastered and where it is kept.

* `content` — the drive's JSON description → a validated `DriveSpec` → the exact file tree (pure);
  `network` reads the description's network part and writes `network_data.json`; `vendor` the
  secret parts (password, vendor data, `vendor_data.json`); `validation` holds the errors
  (`DriveError`, `DriveTooLarge`) and the field checks;
* `iso` — the file tree → ISO 9660 + Rock Ridge + Joliet bytes, deterministically (pycdlib);
* `store` — builds on a thread pool and keeps `<store>/configdrive/<instance>.iso` atomically.
"""
