"""Imports: files read as streams of lines (:mod:`.sources`), cell values parsed as the user says
(:mod:`.values`), columns mapped onto fields (:mod:`.mapping`), customers created or updated
(:mod:`.customers`), every import recorded and revertible (:mod:`.service`)."""
