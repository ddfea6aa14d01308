"""The ``candor`` command: subcommands of the training stage and the service, imported lazily."""
