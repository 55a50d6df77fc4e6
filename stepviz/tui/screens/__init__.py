"""The screens: the main one, the compare view, the dialogs and the help."""
