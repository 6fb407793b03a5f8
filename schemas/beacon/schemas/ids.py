"""What an id looks like, once: job ids and catalogue ids travel inside Kafka keys joined with "|", in URLs
and in file names, so they are kept plain."""

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
ID_DESCRIPTION = "Letters, digits, '.', '_' or '-'; 1-64, starting with a letter or digit."
