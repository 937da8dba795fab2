package qemucmd

// noValue are QEMU's options that take no value: QEMU 7.2's list (checked
// against `qemu-system-x86_64 -help` in arity_test.go), plus those of other
// targets and of older and newer releases. Every other option takes one.
var noValue = map[string]bool{
	"h": true, "help": true, "version": true,
	"S": true, "s": true,
	"nodefaults": true, "no-user-config": true, "nodefconfig": true,
	"snapshot": true, "nographic": true, "full-screen": true, "portrait": true,
	"win2k-hack": true, "no-fd-bootchk": true, "no-acpi": true, "no-hpet": true,
	"usb": true, "enable-kvm": true, "no-kvm": true, "no-reboot": true,
	"no-shutdown": true, "daemonize": true, "mem-prealloc": true,
	"singlestep": true, "one-insn-per-tb": true, "preconfig": true,
	"only-migratable": true, "enable-sync-profile": true, "async-teardown": true,
	"audio-help": true, "semihosting": true, "old-param": true,
	"xen-attach": true, "xen-create": true, "xen-domid-restrict": true,
	"alt-grab": true, "ctrl-grab": true, "no-quit": true, "sdl": true,
	"curses": true, "no-frame": true, "show-cursor": true, "enable-fips": true,
	"perfmap": true, "jitdump": true,
	"no-kvm-irqchip": true, "no-kvm-pit": true, "no-kvm-pit-reinjection": true,
	"rtc-td-hack": true, "localtime": true, "std-vga": true, "tdf": true,
	"virtfs_synth": true,
}

// withValue are the options known to take a value: QEMU 7.2's, for
// x86 and the other targets, and a few of older and newer releases. An
// option in neither list is taken to have a value, except at the end of a
// command line, where Parse refuses it.
var withValue = map[string]bool{
	"machine": true, "M": true, "cpu": true, "accel": true, "smp": true,
	"numa": true, "add-fd": true, "set": true, "global": true, "boot": true,
	"m": true, "mem-path": true, "k": true, "audio": true, "audiodev": true,
	"soundhw": true, "device": true, "name": true, "uuid": true,
	"fda": true, "fdb": true, "hda": true, "hdb": true, "hdc": true, "hdd": true,
	"cdrom": true, "blockdev": true, "drive": true, "mtdblock": true, "sd": true,
	"pflash": true, "fsdev": true, "virtfs": true,
	"iscsi": true, "usbdevice": true, "display": true, "spice": true,
	"rotate": true, "vga": true, "vnc": true, "g": true, "prom-env": true,
	"acpitable": true, "smbios": true, "netdev": true, "nic": true, "net": true,
	"chardev": true, "tpmdev": true, "bios": true, "kernel": true,
	"append": true, "initrd": true, "dtb": true, "shim": true, "compat": true,
	"fw_cfg": true, "serial": true, "parallel": true, "monitor": true,
	"qmp": true, "qmp-pretty": true, "mon": true, "debugcon": true,
	"pidfile": true, "overcommit": true, "gdb": true, "d": true, "D": true,
	"dfilter": true, "seed": true, "L": true, "xen-domid": true,
	"action": true, "loadvm": true, "option-rom": true, "rtc": true,
	"icount": true, "watchdog": true, "watchdog-action": true, "echr": true,
	"incoming": true, "chroot": true, "runas": true, "run-with": true,
	"sandbox": true, "readconfig": true, "writeconfig": true, "trace": true,
	"plugin": true, "msg": true, "dump-vmstate": true, "object": true,
	"semihosting-config": true, "tb-size": true, "qtest": true,
	"qtest-log": true, "balloon": true, "virtioconsole": true,
	"realtime": true, "bt": true, "clock": true, "pcidevice": true,
	"kvm-shadow-memory": true,
}

// TakesValue says whether QEMU reads the next argument as the option's
// value (name without dashes), and whether the option is known at all.
func TakesValue(name string) (takes, known bool) {
	if noValue[name] {
		return false, true
	}
	return true, withValue[name]
}
