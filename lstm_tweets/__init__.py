"""lstm_tweets: does a tweet predict the next N minutes of the market?"""
