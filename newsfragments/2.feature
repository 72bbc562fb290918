The management server serves CloudStack's query API with signed requests, sessions, domains, accounts, users, roles, settings, events and async jobs on SQLite or MariaDB.
