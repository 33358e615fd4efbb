"""Django session engines: hashed-key server stores, JWT cookies and a hybrid of both."""

__version__ = "0.1.0"
