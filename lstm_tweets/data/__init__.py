"""Files -> canonical frames -> labels -> split -> tokens -> tensors."""

from lstm_tweets.data.errors import DataError

__all__ = ["DataError"]
