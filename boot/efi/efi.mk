# boot/efi: BOOTX64.EFI, the gnu-efi loader, and the ESP tree OVMF boots from.
#
#   build/esp/EFI/BOOT/BOOTX64.EFI   the loader (boot/efi/loader.c)
#   build/esp/blimp.elf              the same kernel the PVH path boots
#
# kernel/memmap.c is compiled in too: the loader normalizes the memory map
# with the kernel's own code.

EFI_INC := /usr/include/efi
EFI_CFLAGS := -std=gnu11 -O2 -Wall -Wextra -Werror -Wno-pointer-sign -Wno-unused-parameter \
	-I$(EFI_INC) -I$(EFI_INC)/x86_64 -I. \
	-fpic -ffreestanding -fno-stack-protector -fno-stack-check -fshort-wchar \
	-mno-red-zone -maccumulate-outgoing-args -DEFI_FUNCTION_WRAPPER
EFI_OBJS := $(BUILD)/efi/loader.o $(BUILD)/efi/memmap.o
ESP_TARGETS := $(BUILD)/esp/EFI/BOOT/BOOTX64.EFI $(BUILD)/esp/blimp.elf

$(BUILD)/efi/loader.o: boot/efi/loader.c boot/boot_info.h kernel/memmap.h arch/x86_64/qemu_exit.h | $(BUILD)/.deps
	$(Q)mkdir -p $(dir $@)
	$(Q)gcc $(EFI_CFLAGS) -c $< -o $@
$(BUILD)/efi/memmap.o: kernel/memmap.c kernel/memmap.h boot/boot_info.h | $(BUILD)/.deps
	$(Q)mkdir -p $(dir $@)
	$(Q)gcc $(EFI_CFLAGS) -c $< -o $@

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
