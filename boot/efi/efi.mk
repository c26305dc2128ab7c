# Placeholder until the UEFI loader lands: builds nothing.
ESP_TARGETS :=
