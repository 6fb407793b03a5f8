"""The read side: the read API, the portal and the analysis, served from the projection the recorder
writes. A process of its own (`beacon-reader`, __main__.py, or `beacon reader`), so reads scale apart from
writes and never hold up the recorder's consumer."""
