package domxml

import (
	"errors"
	"strings"
	"testing"

	"k8s.io/utils/cpuset"
)

// dom wraps placement elements in a domain; os and a disk are there to show
// that what is not placement is ignored.
func dom(inner string) []byte {
	return []byte("<domain type='kvm'><name>t</name><os><type>hvm</type></os>" + inner +
		"<devices><disk type='file' device='disk'><source file='/x.img'/><target dev='vda'/></disk></devices></domain>")
}

const (
	base     = "<vcpu>4</vcpu><memory unit='GiB'>4</memory>"
	twoCells = "<cpu><numa><cell id='0' cpus='0-1' memory='1' unit='GiB'/><cell id='1' cpus='2-3' memory='1' unit='GiB'/></numa></cpu>"
	hotplug  = "<maxMemory slots='2' unit='GiB'>8</maxMemory>"
)

func cells(inner string) string { return "<cpu><numa>" + inner + "</numa></cpu>" }

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name string
		xml  string
		// check, when set, looks at the parsed domain.
		check func(*Domain) bool
	}{
		{"vcpu current and cpuset", "<vcpu current='2' cpuset='0-7,^3'>4</vcpu><memory>1048576</memory>", func(d *Domain) bool {
			return d.VCPU.Max == 4 && d.VCPU.Current == 2 && d.VCPU.CPUSet.Equals(cpuset.New(0, 1, 2, 4, 5, 6, 7)) &&
				d.VCPU.Placement == PlacementStatic && d.NUMATune == nil && d.Memory == 1<<30
		}},
		{"vcpu auto implies numatune auto strict", "<vcpu placement='auto' cpuset='1'>2</vcpu><memory>1048576</memory>", func(d *Domain) bool {
			b := d.Binding(0)
			return d.VCPU.Placement == PlacementAuto && d.VCPU.CPUSet.IsEmpty() && b.Auto && b.Mode == ModeStrict
		}},
		{"numatune auto makes vcpu auto", base + "<numatune><memory mode='interleave' placement='auto'/></numatune>", func(d *Domain) bool {
			return d.VCPU.Placement == PlacementAuto && d.Binding(0).Mode == ModeInterleave && d.Binding(0).Auto
		}},
		{"numatune auto keeps a static vcpu cpuset", "<vcpu cpuset='0-3'>4</vcpu><memory>1048576</memory><numatune><memory placement='auto' nodeset='1'/></numatune>", func(d *Domain) bool {
			return d.VCPU.Placement == PlacementStatic && d.VCPU.CPUSet.Size() == 4 && d.NUMATune.Memory.Nodes.IsEmpty()
		}},
		{"numatune strict default", base + "<numatune><memory nodeset='0-1'/></numatune>", func(d *Domain) bool {
			m := d.NUMATune.Memory
			return m.Mode == ModeStrict && m.Placement == PlacementStatic && m.Nodes.Equals(cpuset.New(0, 1))
		}},
		{"numatune preferred", base + "<numatune><memory mode='preferred' nodeset='1'/></numatune>", func(d *Domain) bool {
			return d.Binding(0).Mode == ModePreferred && d.Binding(0).From == "memory"
		}},
		{"numatune interleave", base + "<numatune><memory mode='interleave' nodeset='0-3,^1'/></numatune>", func(d *Domain) bool {
			return d.Binding(0).Mode == ModeInterleave && d.Binding(0).Nodes.Equals(cpuset.New(0, 2, 3))
		}},
		{"numatune restrictive", base + "<numatune><memory mode='restrictive' nodeset='0'/></numatune>", func(d *Domain) bool {
			return d.Binding(0).Mode == ModeRestrictive
		}},
		{"memnode alone, default strict", base + twoCells + "<numatune><memnode cellid='1' nodeset='3'/></numatune>", func(d *Domain) bool {
			return d.NUMATune.Memory == nil && d.Binding(1).Mode == ModeStrict && d.Binding(1).From == "memnode" && d.Binding(0).Mode == ""
		}},
		{"memnode over memory", base + twoCells + "<numatune><memory mode='interleave' nodeset='0-1'/><memnode cellid='0' mode='preferred' nodeset='1'/></numatune>", func(d *Domain) bool {
			return d.Binding(0).Mode == ModePreferred && d.Binding(1).Mode == ModeInterleave && d.Binding(1).From == "memory"
		}},
		{"cells without ids, memory-only cell", "<vcpu>2</vcpu>" + cells("<cell cpus='0-1' memory='512' unit='MiB'/><cell memory='1048576'/>"), func(d *Domain) bool {
			return len(d.Cells) == 2 && d.Cells[1].ID == 1 && d.Cells[1].CPUs.IsEmpty() && d.Cells[0].Memory == 512<<20 && d.Memory == 0
		}},
		{"cells in any order", "<vcpu>2</vcpu>" + cells("<cell id='1' cpus='1' memory='1'/><cell id='0' cpus='0' memory='2'/>"), func(d *Domain) bool {
			return d.Cells[0].Memory == 2048 && d.Cells[1].CPUs.Equals(cpuset.New(1))
		}},
		{"cell memAccess and discard", "<vcpu>1</vcpu>" + cells("<cell cpus='0' memory='1' memAccess='shared' discard='yes'/>"), func(d *Domain) bool {
			return d.Access(0) == AccessShared && *d.Cells[0].Discard
		}},
		{"topology with clusters", "<vcpu>16</vcpu><memory>1</memory><cpu><topology sockets='2' dies='2' clusters='2' cores='1' threads='2'/></cpu>", func(d *Domain) bool {
			return *d.Topology == Topology{Sockets: 2, Dies: 2, Clusters: 2, Cores: 1, Threads: 2}
		}},
		{"cpu model is ignored", "<vcpu>1</vcpu><memory>1</memory><cpu mode='custom' match='exact'><model fallback='forbid'>Skylake</model><feature policy='require' name='pcid'/><cache mode='passthrough'/></cpu>", nil},
		{"hugepages without pages", base + "<memoryBacking><hugepages/></memoryBacking>", func(d *Domain) bool {
			size, ok := d.PageSize(0)
			return ok && size == 0
		}},
		{"hugepages default and per cell", base + twoCells + "<memoryBacking><hugepages><page size='2048'/><page size='1' unit='G' nodeset='1'/></hugepages></memoryBacking>", func(d *Domain) bool {
			s0, ok0 := d.PageSize(0)
			s1, ok1 := d.PageSize(1)
			return ok0 && s0 == 2<<20 && ok1 && s1 == 1<<30
		}},
		{"hugepages on one cell", base + twoCells + "<memoryBacking><hugepages><page size='1' unit='G' nodeset='0'/></hugepages></memoryBacking>", func(d *Domain) bool {
			_, ok := d.PageSize(1)
			return !ok
		}},
		{"memory backing flags", base + "<memoryBacking><source type='file'/><access mode='private'/><allocation mode='ondemand'/><locked/></memoryBacking>", func(d *Domain) bool {
			mb := d.MemoryBacking
			return mb.Source == SourceFile && mb.Access == AccessPrivate && mb.Allocation == AllocOnDemand && mb.Locked && !mb.Discard
		}},
		{"iothreads count only", base + "<iothreads>2</iothreads>", func(d *Domain) bool {
			return len(d.IOThreads) == 2 && d.IOThreads[0] == 1 && d.IOThreads[1] == 2
		}},
		{"iothreadids more than count", base + "<iothreads>1</iothreads><iothreadids><iothread id='4'/><iothread id='9'/></iothreadids>", func(d *Domain) bool {
			return len(d.IOThreads) == 2 && d.IOThreads[1] == 9
		}},
		{"dimm without node", base + hotplug + "<devices><memory model='dimm'><target><size unit='MiB'>512</size></target></memory></devices>", func(d *Domain) bool {
			return len(d.MemoryDevices) == 1 && d.MemoryDevices[0].Node == nil && d.MemoryDevices[0].Size == 512<<20
		}},
		{"virtio-mem output-only current is ignored", base + twoCells + hotplug + "<devices><memory model='virtio-mem'><target><size unit='GiB'>1</size><node>1</node><current unit='MiB'>3</current></target></memory></devices>", func(d *Domain) bool {
			return *d.MemoryDevices[0].Node == 1
		}},
		{"maxMemory", base + "<maxMemory slots='16' unit='KiB'>15242880</maxMemory><currentMemory unit='MiB'>512</currentMemory>", func(d *Domain) bool {
			return d.MaxMemory.Slots == 16 && d.MaxMemory.Size == 15242880*1024 && d.CurrentMemory == 512<<20
		}},
		{"maxMemory without slots, virtio-mem and its guest layout", base + twoCells + "<maxMemory unit='GiB'>8</maxMemory><devices><memory model='virtio-mem'><target dynamicMemslots='yes'><size unit='GiB'>1</size><node>0</node><address base='0x150000000'/></target><address type='pci' bus='0x01' slot='0x01'/></memory></devices>", func(d *Domain) bool {
			return d.MaxMemory.Slots == 0 && len(d.MemoryDevices) == 1
		}},
		{"uuid without dashes", "<uuid>4DEA22B31D52D8F32516782E98AB3FA0</uuid>" + base, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Parse(dom(tc.xml))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if tc.check != nil && !tc.check(d) {
				t.Errorf("unexpected domain:\n%s", d.Summary())
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		xml  string
		want error
		// says is a piece of the message: the element, attribute or value.
		says string
	}{
		{"not xml", "<vcpu>", ErrInvalid, "syntax"},
		{"no vcpu", "<memory>1</memory>", ErrInvalid, "<vcpu> is required"},
		{"two vcpu", base + "<vcpu>2</vcpu>", ErrInvalid, "<vcpu>: given 2 times"},
		{"vcpu 0", "<vcpu>0</vcpu><memory>1</memory>", ErrInvalid, "<vcpu>0: the value must be at least 1"},
		{"vcpu negative", "<vcpu>-1</vcpu><memory>1</memory>", ErrInvalid, "<vcpu>-1: "},
		{"vcpu word", "<vcpu>four</vcpu><memory>1</memory>", ErrInvalid, "four"},
		{"vcpu too many", "<vcpu>70000</vcpu><memory>1</memory>", ErrInvalid, "below 65536"},
		{"current above max", "<vcpu current='5'>4</vcpu><memory>1</memory>", ErrInvalid, "current='5'"},
		{"current 0", "<vcpu current='0'>4</vcpu><memory>1</memory>", ErrInvalid, "current='0'"},
		{"vcpu placement", "<vcpu placement='numad'>4</vcpu><memory>1</memory>", ErrInvalid, "placement='numad'"},
		{"vcpu cpuset empty", "<vcpu cpuset=''>4</vcpu><memory>1</memory>", ErrInvalid, "cpuset=''"},
		{"vcpu cpuset none left", "<vcpu cpuset='1,^1'>4</vcpu><memory>1</memory>", ErrInvalid, "names no id"},
		{"vcpu cpuset backwards", "<vcpu cpuset='3-1'>4</vcpu><memory>1</memory>", ErrInvalid, "cpuset='3-1'"},
		{"vcpu cpuset huge", "<vcpu cpuset='0-4294967297'>4</vcpu><memory>1</memory>", ErrInvalid, "cpuset="},
		{"vcpu unknown attribute", "<vcpu shares='1'>4</vcpu><memory>1</memory>", ErrUnsupported, "shares"},
		{"no memory", "<vcpu>1</vcpu>", ErrInvalid, "memory size"},
		{"memory unit", "<vcpu>1</vcpu><memory unit='GiBs'>1</memory>", ErrInvalid, "<memory>: size \"1\" unit \"GiBs\""},
		{"memory overflow", "<vcpu>1</vcpu><memory unit='EiB'>16</memory>", ErrInvalid, "64 bits"},
		{"memory word", "<vcpu>1</vcpu><memory>lots</memory>", ErrInvalid, "lots"},
		{"uuid", "<uuid>not-a-uuid</uuid>" + base, ErrInvalid, "not-a-uuid"},

		{"vcpus id beyond", base + "<vcpus><vcpu id='4' enabled='yes'/></vcpus>", ErrInvalid, "<vcpus><vcpu id='4'>"},
		{"vcpus twice", base + "<vcpus><vcpu id='1' enabled='yes'/><vcpu id='1' enabled='yes'/></vcpus>", ErrInvalid, "given twice"},
		{"vcpus disabled fixed", base + "<vcpus><vcpu id='1' enabled='no' hotpluggable='no'/></vcpus>", ErrInvalid, "must be hotpluggable"},
		{"vcpus 0 hotpluggable", base + "<vcpus><vcpu id='0' enabled='yes' hotpluggable='yes'/></vcpus>", ErrInvalid, "vCPU 0"},
		{"vcpus order on some", base + "<vcpus><vcpu id='0' enabled='yes' order='1'/><vcpu id='1' enabled='yes'/></vcpus>", ErrInvalid, "order"},
		{"vcpus enabled count", "<vcpu current='1'>2</vcpu><memory>1</memory><vcpus><vcpu id='0' enabled='yes'/><vcpu id='1' enabled='yes' hotpluggable='yes'/></vcpus>", ErrInvalid, "current"},
		{"vcpus enabled value", base + "<vcpus><vcpu id='0' enabled='true'/></vcpus>", ErrInvalid, "enabled='true'"},
		{"vcpus no enabled", base + "<vcpus><vcpu id='0'/></vcpus>", ErrInvalid, "enabled is required"},

		{"vcpupin beyond", base + "<cputune><vcpupin vcpu='4' cpuset='0'/></cputune>", ErrInvalid, "vcpupin vcpu='4'"},
		{"vcpupin twice", base + "<cputune><vcpupin vcpu='1' cpuset='0'/><vcpupin vcpu='1' cpuset='1'/></cputune>", ErrInvalid, "pinned twice"},
		{"vcpupin no cpuset", base + "<cputune><vcpupin vcpu='1'/></cputune>", ErrInvalid, "cpuset is required"},
		{"vcpupin bad cpuset", base + "<cputune><vcpupin vcpu='1' cpuset='0-x'/></cputune>", ErrInvalid, "cpuset='0-x'"},
		{"emulatorpin no cpuset", base + "<cputune><emulatorpin/></cputune>", ErrInvalid, "emulatorpin>: attribute cpuset"},
		{"two emulatorpin", base + "<cputune><emulatorpin cpuset='0'/><emulatorpin cpuset='1'/></cputune>", ErrInvalid, "given 2 times"},
		{"iothreadpin unknown", base + "<iothreads>1</iothreads><cputune><iothreadpin iothread='2' cpuset='0'/></cputune>", ErrInvalid, "iothread='2'"},
		{"iothreadpin 0", base + "<iothreads>1</iothreads><cputune><iothreadpin iothread='0' cpuset='0'/></cputune>", ErrInvalid, "iothread='0'"},
		{"iothreadids twice", base + "<iothreadids><iothread id='1'/><iothread id='1'/></iothreadids>", ErrInvalid, "given twice"},
		{"iothreads word", base + "<iothreads>many</iothreads>", ErrInvalid, "many"},
		{"cputune shares", base + "<cputune><shares>2048</shares></cputune>", ErrUnsupported, "<cputune><shares>"},
		{"cputune vcpusched", base + "<cputune><vcpusched vcpus='0' scheduler='fifo' priority='1'/></cputune>", ErrUnsupported, "<cputune><vcpusched>"},
		{"cputune cachetune", base + "<cputune><cachetune vcpus='0-1'/></cputune>", ErrUnsupported, "cachetune"},
		{"vcpupin unknown attribute", base + "<cputune><vcpupin vcpu='0' cpuset='0' weight='2'/></cputune>", ErrUnsupported, "weight"},

		{"numatune mode", base + "<numatune><memory mode='bind' nodeset='0'/></numatune>", ErrInvalid, "<numatune><memory mode='bind'>: mode must be one of strict, preferred, interleave, restrictive"},
		{"numatune placement", base + "<numatune><memory placement='numad' nodeset='0'/></numatune>", ErrInvalid, "placement='numad'"},
		{"numatune static without nodeset", base + "<numatune><memory mode='strict'/></numatune>", ErrInvalid, "needs a nodeset"},
		{"numatune empty nodeset", base + "<numatune><memory nodeset='0,^0'/></numatune>", ErrInvalid, "nodeset='0,^0'"},
		{"numatune twice", base + "<numatune/><numatune/>", ErrInvalid, "<numatune>: given 2 times"},
		{"numatune unknown child", base + "<numatune><cpu/></numatune>", ErrUnsupported, "<numatune><cpu>"},
		{"memnode without cells", base + "<numatune><memnode cellid='0' nodeset='0'/></numatune>", ErrInvalid, "needs guest NUMA cells"},
		{"memnode cell beyond", base + twoCells + "<numatune><memnode cellid='2' nodeset='0'/></numatune>", ErrInvalid, "memnode cellid='2'"},
		{"memnode twice", base + twoCells + "<numatune><memnode cellid='1' nodeset='0'/><memnode cellid='1' nodeset='1'/></numatune>", ErrInvalid, "given twice"},
		{"memnode mode", base + twoCells + "<numatune><memnode cellid='1' mode='bind' nodeset='0'/></numatune>", ErrInvalid, "mode='bind'"},
		{"memnode no nodeset", base + twoCells + "<numatune><memnode cellid='1'/></numatune>", ErrInvalid, "nodeset is required"},
		{"memnode no cellid", base + twoCells + "<numatune><memnode nodeset='1'/></numatune>", ErrInvalid, "cellid is required"},
		{"memnode under auto", base + twoCells + "<numatune><memory placement='auto'/><memnode cellid='1' nodeset='0'/></numatune>", ErrInvalid, "placement='auto'"},
		{"memnode restrictive alone", base + twoCells + "<numatune><memory mode='strict' nodeset='0'/><memnode cellid='0' mode='restrictive' nodeset='0'/></numatune>", ErrInvalid, "mode='restrictive'"},
		{"memory restrictive, memnode strict", base + twoCells + "<numatune><memory mode='restrictive' nodeset='0'/><memnode cellid='0' nodeset='0'/></numatune>", ErrInvalid, "restrictive' on every memnode"},

		{"cells overlap", "<vcpu>4</vcpu>" + cells("<cell cpus='0-2' memory='1'/><cell cpus='2-3' memory='1'/>"), ErrInvalid, "vCPU 2 is in cell 0 too"},
		{"cell cpus beyond vcpu", "<vcpu>2</vcpu>" + cells("<cell cpus='0-2' memory='1'/>"), ErrInvalid, "cpus='0-2'"},
		{"cells leave vcpus out", "<vcpu>4</vcpu>" + cells("<cell cpus='0-1' memory='1'/><cell memory='1'/>"), ErrInvalid, "vCPUs 2-3 are in no cell"},
		{"cell id beyond", "<vcpu>1</vcpu>" + cells("<cell id='1' cpus='0' memory='1'/>"), ErrInvalid, "<cell id='1'>: cell ids must run 0..0"},
		{"cell id twice", "<vcpu>2</vcpu>" + cells("<cell id='0' cpus='0' memory='1'/><cell id='0' cpus='1' memory='1'/>"), ErrInvalid, "cell id given twice"},
		{"cell no memory", "<vcpu>1</vcpu>" + cells("<cell cpus='0'/>"), ErrInvalid, "memory is required"},
		{"cell memory unit", "<vcpu>1</vcpu>" + cells("<cell cpus='0' memory='1' unit='GiG'/>"), ErrInvalid, "<cpu><numa><cell id='0'>: size \"1\" unit \"GiG\""},
		{"cell memAccess", "<vcpu>1</vcpu>" + cells("<cell cpus='0' memory='1' memAccess='public'/>"), ErrInvalid, "memAccess='public'"},
		{"cell discard", "<vcpu>1</vcpu>" + cells("<cell cpus='0' memory='1' discard='on'/>"), ErrInvalid, "discard='on'"},
		{"cell unknown child", "<vcpu>1</vcpu>" + cells("<cell cpus='0' memory='1'><bogus/></cell>"), ErrUnsupported, "<bogus>"},
		{"numa without cells", "<vcpu>1</vcpu><memory>1</memory>" + cells(""), ErrInvalid, "without cells"},
		{"sibling beyond", "<vcpu>1</vcpu>" + cells("<cell cpus='0' memory='1'><distances><sibling id='1' value='20'/></distances></cell>"), ErrInvalid, "sibling id='1'"},
		{"sibling value 9", "<vcpu>2</vcpu>" + cells("<cell cpus='0' memory='1'><distances><sibling id='1' value='9'/></distances></cell><cell cpus='1' memory='1'/>"), ErrInvalid, "value='9'"},
		{"sibling value 256", "<vcpu>2</vcpu>" + cells("<cell cpus='0' memory='1'><distances><sibling id='1' value='256'/></distances></cell><cell cpus='1' memory='1'/>"), ErrInvalid, "value='256'"},
		{"self not 10", "<vcpu>2</vcpu>" + cells("<cell cpus='0' memory='1'><distances><sibling id='0' value='20'/></distances></cell><cell cpus='1' memory='1'/>"), ErrInvalid, "to itself is 10"},
		{"remote 10", "<vcpu>2</vcpu>" + cells("<cell cpus='0' memory='1'><distances><sibling id='1' value='10'/></distances></cell><cell cpus='1' memory='1'/>"), ErrInvalid, "to itself only"},
		{"sibling twice", "<vcpu>2</vcpu>" + cells("<cell cpus='0' memory='1'><distances><sibling id='1' value='20'/><sibling id='1' value='30'/></distances></cell><cell cpus='1' memory='1'/>"), ErrInvalid, "sibling given twice"},
		{"distances empty", "<vcpu>1</vcpu>" + cells("<cell cpus='0' memory='1'><distances/></cell>"), ErrInvalid, "without siblings"},
		{"cache level 0", "<vcpu>1</vcpu>" + cells("<cell cpus='0' memory='1'><cache level='0' associativity='direct' policy='none'><size value='1'/><line value='64'/></cache></cell>"), ErrInvalid, "level='0'"},
		{"cache level 4", "<vcpu>1</vcpu>" + cells("<cell cpus='0' memory='1'><cache level='4' associativity='direct' policy='none'><size value='1'/><line value='64'/></cache></cell>"), ErrInvalid, "level='4'"},
		{"cache level twice", "<vcpu>1</vcpu>" + cells("<cell cpus='0' memory='1'><cache level='1' associativity='direct' policy='none'><size value='1'/><line value='64'/></cache><cache level='1' associativity='full' policy='none'><size value='1'/><line value='64'/></cache></cell>"), ErrInvalid, "cache level given twice"},
		{"cache associativity", "<vcpu>1</vcpu>" + cells("<cell cpus='0' memory='1'><cache level='1' associativity='2way' policy='none'><size value='1'/><line value='64'/></cache></cell>"), ErrInvalid, "associativity='2way'"},
		{"cache policy", "<vcpu>1</vcpu>" + cells("<cell cpus='0' memory='1'><cache level='1' associativity='full' policy='lazy'><size value='1'/><line value='64'/></cache></cell>"), ErrInvalid, "policy='lazy'"},
		{"cache no size", "<vcpu>1</vcpu>" + cells("<cell cpus='0' memory='1'><cache level='1' associativity='full' policy='none'><line value='64'/></cache></cell>"), ErrInvalid, "<size>: element is required"},
		{"cache no line", "<vcpu>1</vcpu>" + cells("<cell cpus='0' memory='1'><cache level='1' associativity='full' policy='none'><size value='1'/></cache></cell>"), ErrInvalid, "<line>: element is required"},
		{"cache line unit", "<vcpu>1</vcpu>" + cells("<cell cpus='0' memory='1'><cache level='1' associativity='full' policy='none'><size value='1'/><line value='64' unit='lines'/></cache></cell>"), ErrInvalid, "lines"},

		{"initiator beyond", "<vcpu>1</vcpu>" + cells("<cell cpus='0' memory='1'/><interconnects><latency initiator='1' target='0' type='access' value='5'/></interconnects>"), ErrInvalid, "initiator names no cell"},
		{"target beyond", "<vcpu>1</vcpu>" + cells("<cell cpus='0' memory='1'/><interconnects><latency initiator='0' target='1' type='access' value='5'/></interconnects>"), ErrInvalid, "target names no cell"},
		{"memory-only initiator", "<vcpu>1</vcpu>" + cells("<cell cpus='0' memory='1'/><cell memory='1'/><interconnects><latency initiator='1' target='0' type='access' value='5'/></interconnects>"), ErrInvalid, "without vCPUs cannot be an initiator"},
		{"latency to missing cache", "<vcpu>1</vcpu>" + cells("<cell cpus='0' memory='1'/><interconnects><latency initiator='0' target='0' cache='1' type='access' value='5'/></interconnects>"), ErrInvalid, "no cache of level 1"},
		{"latency type", "<vcpu>1</vcpu>" + cells("<cell cpus='0' memory='1'/><interconnects><latency initiator='0' target='0' type='copy' value='5'/></interconnects>"), ErrInvalid, "type='copy'"},
		{"latency twice", "<vcpu>1</vcpu>" + cells("<cell cpus='0' memory='1'/><interconnects><latency initiator='0' target='0' type='read' value='5'/><latency initiator='0' target='0' type='read' value='6'/></interconnects>"), ErrInvalid, "given twice"},
		{"latency unit", "<vcpu>1</vcpu>" + cells("<cell cpus='0' memory='1'/><interconnects><latency initiator='0' target='0' type='read' value='5' unit='ms'/></interconnects>"), ErrInvalid, "unit='ms'"},
		{"latency no value", "<vcpu>1</vcpu>" + cells("<cell cpus='0' memory='1'/><interconnects><latency initiator='0' target='0' type='read'/></interconnects>"), ErrInvalid, "value is required"},
		{"bandwidth unit", "<vcpu>1</vcpu>" + cells("<cell cpus='0' memory='1'/><interconnects><bandwidth initiator='0' target='0' type='read' value='5' unit='Gbit'/></interconnects>"), ErrInvalid, "Gbit"},
		{"interconnects unknown", "<vcpu>1</vcpu>" + cells("<cell cpus='0' memory='1'/><interconnects><hops initiator='0' target='0'/></interconnects>"), ErrUnsupported, "<hops>"},

		{"topology mismatch", base + "<cpu><topology sockets='2' cores='1' threads='1'/></cpu>", ErrInvalid, "does not make the 4 vCPUs"},
		{"topology overflow", base + "<cpu><topology sockets='65535' dies='65535' clusters='65535' cores='65535' threads='65535'/></cpu>", ErrInvalid, "does not make the 4 vCPUs"},
		{"topology sockets 0", base + "<cpu><topology sockets='0' cores='4' threads='1'/></cpu>", ErrInvalid, "sockets='0'"},
		{"topology no cores", base + "<cpu><topology sockets='4' threads='1'/></cpu>", ErrInvalid, "cores is required"},
		{"topology unknown", base + "<cpu><topology sockets='4' cores='1' threads='1' books='1'/></cpu>", ErrUnsupported, "books"},

		{"source type", base + "<memoryBacking><source type='shm'/></memoryBacking>", ErrInvalid, "type='shm'"},
		{"access mode", base + "<memoryBacking><access mode='public'/></memoryBacking>", ErrInvalid, "mode='public'"},
		{"allocation mode", base + "<memoryBacking><allocation mode='lazy'/></memoryBacking>", ErrInvalid, "mode='lazy'"},
		{"allocation threads", base + "<memoryBacking><allocation mode='immediate' threads='0'/></memoryBacking>", ErrInvalid, "threads='0'"},
		{"hugepage no size", base + "<memoryBacking><hugepages><page unit='M'/></hugepages></memoryBacking>", ErrInvalid, "size is required"},
		{"hugepage size 0", base + "<memoryBacking><hugepages><page size='0'/></hugepages></memoryBacking>", ErrInvalid, "size='0'"},
		{"hugepage unit", base + "<memoryBacking><hugepages><page size='2' unit='huge'/></hugepages></memoryBacking>", ErrInvalid, "huge"},
		{"hugepage cell beyond", base + twoCells + "<memoryBacking><hugepages><page size='2048' nodeset='2'/></hugepages></memoryBacking>", ErrInvalid, "no guest cell has id 2"},
		{"hugepage cell without cells", base + "<memoryBacking><hugepages><page size='2048' nodeset='1'/></hugepages></memoryBacking>", ErrInvalid, "no guest cell has id 1"},
		{"hugepage cells overlap", base + twoCells + "<memoryBacking><hugepages><page size='2048' nodeset='0-1'/><page size='1048576' nodeset='1'/></hugepages></memoryBacking>", ErrInvalid, "cell 1 is named by another page"},
		{"two default hugepages", base + "<memoryBacking><hugepages><page size='2048'/><page size='1048576'/></hugepages></memoryBacking>", ErrInvalid, "without a nodeset"},
		{"memoryBacking unknown", base + "<memoryBacking><secret/></memoryBacking>", ErrUnsupported, "<memoryBacking><secret>"},
		{"source with mode", base + "<memoryBacking><source type='file' mode='shared'/></memoryBacking>", ErrUnsupported, "mode='shared'"},

		{"maxMemory size 0", base + "<maxMemory slots='1' unit='GiB'>0</maxMemory>", ErrInvalid, "size must be more than 0"},
		{"dimm without slots", base + "<maxMemory unit='GiB'>8</maxMemory><devices><memory model='dimm'><target><size>1</size></target></memory></devices>", ErrInvalid, "1 dimms but <maxMemory slots='0'>"},
		{"maxMemory below memory", base + "<maxMemory slots='1' unit='GiB'>2</maxMemory>", ErrInvalid, "less than"},
		{"maxMemory below cells", "<vcpu>1</vcpu><maxMemory slots='1' unit='MiB'>1</maxMemory>" + cells("<cell cpus='0' memory='1' unit='GiB'/>"), ErrInvalid, "less than"},

		{"nvdimm", base + hotplug + "<devices><memory model='nvdimm'><source><path>/tmp/nv</path></source><target><size>1</size></target></memory></devices>", ErrUnsupported, "model='nvdimm'"},
		{"virtio-pmem", base + hotplug + "<devices><memory model='virtio-pmem'><target><size>1</size></target></memory></devices>", ErrUnsupported, "virtio-pmem"},
		{"memory model", base + hotplug + "<devices><memory model='ssd'><target><size>1</size></target></memory></devices>", ErrInvalid, "model='ssd'"},
		{"memory no model", base + hotplug + "<devices><memory><target><size>1</size></target></memory></devices>", ErrInvalid, "model is required"},
		{"memory device without maxMemory", base + "<devices><memory model='dimm'><target><size>1</size></target></memory></devices>", ErrInvalid, "need <maxMemory"},
		{"memory device no target", base + hotplug + "<devices><memory model='dimm'/></devices>", ErrInvalid, "<target> is required"},
		{"memory device no size", base + hotplug + "<devices><memory model='dimm'><target><node>0</node></target></memory></devices>", ErrInvalid, "<size> is required"},
		{"memory device size 0", base + hotplug + "<devices><memory model='dimm'><target><size>0</size></target></memory></devices>", ErrInvalid, "more than 0"},
		{"memory device node beyond", base + twoCells + hotplug + "<devices><memory model='dimm'><target><size>1</size><node>2</node></target></memory></devices>", ErrInvalid, "<node>2</node>"},
		{"memory device node without cells", base + hotplug + "<devices><memory model='dimm'><target><size>1</size><node>0</node></target></memory></devices>", ErrInvalid, "needs guest NUMA cells"},
		{"memory device node word", base + twoCells + hotplug + "<devices><memory model='dimm'><target><size>1</size><node>one</node></target></memory></devices>", ErrInvalid, "one"},
		{"dimm with block", base + hotplug + "<devices><memory model='dimm'><target><size>2048</size><block>2048</block></target></memory></devices>", ErrInvalid, "virtio-mem' only"},
		{"virtio-mem discard", base + hotplug + "<devices><memory model='virtio-mem' discard='yes'><target><size>2048</size></target></memory></devices>", ErrInvalid, "discard='yes'"},
		{"virtio-mem block not power of 2", base + hotplug + "<devices><memory model='virtio-mem'><target><size>6144</size><block>3072</block></target></memory></devices>", ErrInvalid, "power of two"},
		{"virtio-mem size not multiple", base + hotplug + "<devices><memory model='virtio-mem'><target><size>3072</size><block>2048</block></target></memory></devices>", ErrInvalid, "<size> is not a multiple"},
		{"virtio-mem requested not multiple", base + hotplug + "<devices><memory model='virtio-mem'><target><size>4096</size><block>2048</block><requested>1024</requested></target></memory></devices>", ErrInvalid, "<requested> is not a multiple"},
		{"virtio-mem requested above size", base + hotplug + "<devices><memory model='virtio-mem'><target><size>2048</size><requested>4096</requested></target></memory></devices>", ErrInvalid, "more than <size>"},
		{"more dimms than slots", base + "<maxMemory slots='1' unit='GiB'>8</maxMemory><devices><memory model='dimm'><target><size>1</size></target></memory><memory model='dimm'><target><size>1</size></target></memory></devices>", ErrInvalid, "2 dimms"},
		{"devices beyond maxMemory", "<vcpu>4</vcpu>" + twoCells + "<maxMemory slots='2' unit='GiB'>3</maxMemory><devices><memory model='dimm'><target><size unit='GiB'>2</size></target></memory></devices>", ErrInvalid, "more than <maxMemory>"},
		{"memory device nodemask", base + hotplug + "<devices><memory model='dimm'><source><nodemask>x</nodemask></source><target><size>1</size></target></memory></devices>", ErrInvalid, "nodemask"},
		{"memory device label", base + hotplug + "<devices><memory model='dimm'><target><size>1</size><label><size>128</size></label></target></memory></devices>", ErrUnsupported, "<label>"},
		{"memory device source path", base + hotplug + "<devices><memory model='dimm'><source><path>/x</path></source><target><size>1</size></target></memory></devices>", ErrUnsupported, "<path>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Parse(dom(tc.xml))
			if err == nil {
				t.Fatalf("Parse succeeded, want %v naming %q:\n%s", tc.want, tc.says, d.Summary())
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("error %q does not wrap %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error %q does not say %q", err, tc.says)
			}
		})
	}
}

func TestReadTooLarge(t *testing.T) {
	big := strings.NewReader("<domain>" + strings.Repeat(" ", MaxSize) + "</domain>")
	if _, err := Read(big); !errors.Is(err, ErrInvalid) {
		t.Errorf("Read of more than MaxSize bytes: %v, want ErrInvalid", err)
	}
}

func TestParseManyFullCPUSetsIsBounded(t *testing.T) {
	// 30 pins of every possible CPU: refused once the domain's cpusets name
	// more than maxSetIDs ids, before the time grows with the document.
	pins := strings.Repeat("<vcpupin vcpu='0' cpuset='0-65535'/>", 30)
	_, err := Parse(dom(base + "<cputune>" + pins + "</cputune>"))
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "ids in all") {
		t.Errorf("Parse of 30 full cpusets: %v, want the ids-in-all bound", err)
	}
}
