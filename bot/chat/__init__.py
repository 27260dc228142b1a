"""What the Discord and Telegram bots share, so the two never drift apart.

* ``texts``: every status line, info, history, queue and limits text, and refusals in words
  (Markdown for Discord, plain text for Telegram);
* ``status``: one status message per job kept up to date (ranks, intervals, coalescing);
* ``throttle``: the pure edit throttle under it;
* ``actions``: the actions a result offers, and how emoji are compared;
* ``admin``: reading admin commands' arguments (words, ``key=value``);
* ``grid``: contact sheets of a job's images.
"""
