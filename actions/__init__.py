"""ftrack actions served by `ftrack-transfer serve`: accsyn Send and its siblings."""
