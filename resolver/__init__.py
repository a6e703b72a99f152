"""safe-resolver: a content-filtering DNS resolver for schools and ISPs."""

__version__ = "0.1.0"
