# boot/efi: BOOTX64.EFI, the gnu-efi loader, and the ESP tree OVMF boots from.
#
#   build/esp/EFI/BOOT/BOOTX64.EFI   the loader (boot/efi/loader.c, elf.c)
#   build/esp/blimp.elf              the same kernel the PVH path boots
#
# kernel/memmap.c is compiled in as it is: the loader normalizes the memory
# map with the kernel's own code. Calls into the firmware use the Microsoft
# ABI directly (GNU_EFI_USE_MS_ABI); efi_main itself is called by gnu-efi's
# crt0 with the System V ABI. The .so -> PE conversion keeps only the
# sections OVMF needs to load and relocate the image.

EFI_INC := /usr/include/efi
EFI_CFLAGS := -std=gnu11 -O2 -Wall -Wextra -Werror \
	-I$(EFI_INC) -I$(EFI_INC)/x86_64 -I. \
	-fpic -ffreestanding -fno-stack-protector -fno-stack-check -fshort-wchar \
	-mno-red-zone -DGNU_EFI_USE_MS_ABI -MMD -MP
EFI_OBJS := $(BUILD)/efi/loader.o $(BUILD)/efi/elf.o $(BUILD)/efi/memmap.o
ESP_TARGETS := $(BUILD)/esp/EFI/BOOT/BOOTX64.EFI $(BUILD)/esp/blimp.elf

$(BUILD)/efi/%.o: boot/efi/%.c | $(BUILD)/.deps
	$(Q)mkdir -p $(dir $@)
	$(Q)gcc $(EFI_CFLAGS) -c $< -o $@
$(BUILD)/efi/memmap.o: kernel/memmap.c | $(BUILD)/.deps
	$(Q)mkdir -p $(dir $@)
	$(Q)gcc $(EFI_CFLAGS) -c $< -o $@

-include $(EFI_OBJS:.o=.d)

$(BUILD)/efi/loader.so: $(EFI_OBJS)
	$(Q)ld -shared -Bsymbolic -nostdlib -znocombreloc -T /usr/lib/elf_x86_64_efi.lds \
	    /usr/lib/crt0-efi-x86_64.o $(EFI_OBJS) -o $@ -L/usr/lib -lefi -lgnuefi

$(BUILD)/esp/EFI/BOOT/BOOTX64.EFI: $(BUILD)/efi/loader.so
	$(Q)mkdir -p $(dir $@)
	$(Q)objcopy -j .text -j .sdata -j .data -j .dynamic -j .dynsym -j .rel -j .rela \
	    -j '.rel.*' -j '.rela.*' -j .reloc --target efi-app-x86_64 --subsystem=10 $< $@
	@echo "built $@"

$(BUILD)/esp/blimp.elf: $(BUILD)/blimp.elf
	$(Q)mkdir -p $(dir $@)
	$(Q)cp $< $@
