"""``python -m bot.cli`` is the same as the ``anirec`` command."""

from bot.cli import main

main()
