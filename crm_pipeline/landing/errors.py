"""Why a landed file was not loaded."""


class FileRejected(Exception):
    """A file that cannot be loaded as a whole; the message names the file and, where known, the row."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class WarehouseWriteFailed(Exception):
    """The warehouse refused a file's transaction (disk full, file locked, connection lost): nothing of
    the file was kept. The message names the landed file and the warehouse's own reason."""

    def __init__(self, path: str, cause: BaseException) -> None:
        reason = str(getattr(cause, "orig", None) or cause).strip().splitlines()[0]
        super().__init__(f"{path}: not loaded, writing it to the warehouse failed and nothing of it was kept "
                         f"(load it again once the cause is fixed): {reason}")
        self.path = path
        self.reason = reason
