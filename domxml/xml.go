package domxml

import "encoding/xml"

// The x* types mirror the XML as written; parse.go turns them into Domain.
// Every element of a placement area keeps its unknown attributes and
// children (",any"), so that what qnuma does not know is refused, not
// dropped. Elements that libvirt allows once are slices, to catch repeats.

type xOther struct {
	XMLName xml.Name
}

type xUnknown struct {
	Attrs []xml.Attr `xml:",any,attr"`
	Elems []xOther   `xml:",any"`
}

type xDomain struct {
	XMLName       xml.Name         `xml:"domain"`
	Name          []string         `xml:"name"`
	UUID          []string         `xml:"uuid"`
	Memory        []xScaled        `xml:"memory"`
	CurrentMemory []xScaled        `xml:"currentMemory"`
	MaxMemory     []xMaxMemory     `xml:"maxMemory"`
	VCPU          []xVCPU          `xml:"vcpu"`
	VCPUs         []xVCPUs         `xml:"vcpus"`
	IOThreads     []string         `xml:"iothreads"`
	IOThreadIDs   []xIOThreadIDs   `xml:"iothreadids"`
	CPUTune       []xCPUTune       `xml:"cputune"`
	NUMATune      []xNUMATune      `xml:"numatune"`
	CPU           []xCPU           `xml:"cpu"`
	MemoryBacking []xMemoryBacking `xml:"memoryBacking"`
	Devices       []xDevices       `xml:"devices"`
}

// xScaled is a size written as content with a unit attribute:
// <memory unit='KiB'>524288</memory>.
type xScaled struct {
	Unit  *string `xml:"unit,attr"`
	Value string  `xml:",chardata"`
}

func (s xScaled) unit() string {
	if s.Unit == nil {
		return ""
	}
	return *s.Unit
}

type xMaxMemory struct {
	Slots *string `xml:"slots,attr"`
	xScaled
}

type xVCPU struct {
	Placement *string `xml:"placement,attr"`
	CPUSet    *string `xml:"cpuset,attr"`
	Current   *string `xml:"current,attr"`
	Value     string  `xml:",chardata"`
	xUnknown
}

type xVCPUs struct {
	VCPU []xVCPUState `xml:"vcpu"`
	xUnknown
}

type xVCPUState struct {
	ID           *string `xml:"id,attr"`
	Enabled      *string `xml:"enabled,attr"`
	Hotpluggable *string `xml:"hotpluggable,attr"`
	Order        *string `xml:"order,attr"`
	xUnknown
}

type xIOThreadIDs struct {
	IOThread []xIOThreadID `xml:"iothread"`
	xUnknown
}

type xIOThreadID struct {
	ID *string `xml:"id,attr"`
	xUnknown
}

type xCPUTune struct {
	VCPUPin     []xPin `xml:"vcpupin"`
	EmulatorPin []xPin `xml:"emulatorpin"`
	IOThreadPin []xPin `xml:"iothreadpin"`
	xUnknown
}

type xPin struct {
	VCPU     *string `xml:"vcpu,attr"`
	IOThread *string `xml:"iothread,attr"`
	CPUSet   *string `xml:"cpuset,attr"`
	xUnknown
}

type xNUMATune struct {
	Memory  []xNUMAMemory `xml:"memory"`
	MemNode []xMemNode    `xml:"memnode"`
	xUnknown
}

type xNUMAMemory struct {
	Mode      *string `xml:"mode,attr"`
	NodeSet   *string `xml:"nodeset,attr"`
	Placement *string `xml:"placement,attr"`
	xUnknown
}

type xMemNode struct {
	CellID  *string `xml:"cellid,attr"`
	Mode    *string `xml:"mode,attr"`
	NodeSet *string `xml:"nodeset,attr"`
	xUnknown
}

// xCPU keeps only topology and numa: model, vendor, feature and the CPU
// cache mode are the guest CPU model, which the QEMU command line carries.
type xCPU struct {
	Topology []xTopology `xml:"topology"`
	NUMA     []xNUMA     `xml:"numa"`
}

type xTopology struct {
	Sockets  *string `xml:"sockets,attr"`
	Dies     *string `xml:"dies,attr"`
	Clusters *string `xml:"clusters,attr"`
	Cores    *string `xml:"cores,attr"`
	Threads  *string `xml:"threads,attr"`
	xUnknown
}

type xNUMA struct {
	Cell          []xCell          `xml:"cell"`
	Interconnects []xInterconnects `xml:"interconnects"`
	xUnknown
}

type xCell struct {
	ID        *string      `xml:"id,attr"`
	CPUs      *string      `xml:"cpus,attr"`
	Memory    *string      `xml:"memory,attr"`
	Unit      *string      `xml:"unit,attr"`
	MemAccess *string      `xml:"memAccess,attr"`
	Discard   *string      `xml:"discard,attr"`
	Distances []xDistances `xml:"distances"`
	Cache     []xCache     `xml:"cache"`
	xUnknown
}

type xDistances struct {
	Sibling []xSibling `xml:"sibling"`
	xUnknown
}

type xSibling struct {
	ID    *string `xml:"id,attr"`
	Value *string `xml:"value,attr"`
	xUnknown
}

type xCache struct {
	Level         *string      `xml:"level,attr"`
	Associativity *string      `xml:"associativity,attr"`
	Policy        *string      `xml:"policy,attr"`
	Size          []xValueUnit `xml:"size"`
	Line          []xValueUnit `xml:"line"`
	xUnknown
}

// xValueUnit is a size written as attributes: <size value='10' unit='KiB'/>.
type xValueUnit struct {
	Value *string `xml:"value,attr"`
	Unit  *string `xml:"unit,attr"`
	xUnknown
}

type xInterconnects struct {
	Latency   []xLink `xml:"latency"`
	Bandwidth []xLink `xml:"bandwidth"`
	xUnknown
}

type xLink struct {
	Initiator *string `xml:"initiator,attr"`
	Target    *string `xml:"target,attr"`
	Cache     *string `xml:"cache,attr"`
	Type      *string `xml:"type,attr"`
	Value     *string `xml:"value,attr"`
	Unit      *string `xml:"unit,attr"`
	xUnknown
}

type xMemoryBacking struct {
	Hugepages    []xHugepages `xml:"hugepages"`
	Source       []xTyped     `xml:"source"`
	Access       []xTyped     `xml:"access"`
	Allocation   []xTyped     `xml:"allocation"`
	Discard      []xUnknown   `xml:"discard"`
	NoSharePages []xUnknown   `xml:"nosharepages"`
	Locked       []xUnknown   `xml:"locked"`
	xUnknown
}

type xHugepages struct {
	Page []xPage `xml:"page"`
	xUnknown
}

type xPage struct {
	Size    *string `xml:"size,attr"`
	Unit    *string `xml:"unit,attr"`
	NodeSet *string `xml:"nodeset,attr"`
	xUnknown
}

// xTyped is <source type>, <access mode>, <allocation mode threads>.
type xTyped struct {
	Type    *string `xml:"type,attr"`
	Mode    *string `xml:"mode,attr"`
	Threads *string `xml:"threads,attr"`
	xUnknown
}

type xDevices struct {
	Memory []xMemoryDevice `xml:"memory"`
}

type xMemoryDevice struct {
	Model   *string      `xml:"model,attr"`
	Access  *string      `xml:"access,attr"`
	Discard *string      `xml:"discard,attr"`
	Source  []xMemSource `xml:"source"`
	Target  []xMemTarget `xml:"target"`
	Address []xOther     `xml:"address"`
	Alias   []xOther     `xml:"alias"`
	xUnknown
}

type xMemSource struct {
	PageSize []xScaled `xml:"pagesize"`
	NodeMask []string  `xml:"nodemask"`
	xUnknown
}

type xMemTarget struct {
	Size      []xScaled `xml:"size"`
	Node      []string  `xml:"node"`
	Block     []xScaled `xml:"block"`
	Requested []xScaled `xml:"requested"`
	// Guest-side layout, not placement: ignored.
	Current         []xScaled `xml:"current"` // output only (live XML)
	Address         []xOther  `xml:"address"`
	DynamicMemslots *string   `xml:"dynamicMemslots,attr"`
	xUnknown
}
