"""Why a landed file was not loaded."""


class FileRejected(Exception):
    """A file that cannot be loaded as a whole; the message names the file and, where known, the row."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason
