package domxml_test

import (
	"errors"
	"fmt"

	"github.com/qnuma/qnuma/domxml"
)

func ExampleParse() {
	d, err := domxml.Parse([]byte(`<domain type='kvm'>
  <name>web</name>
  <memory unit='GiB'>2</memory>
  <vcpu placement='static'>2</vcpu>
  <numatune>
    <memory mode='strict' nodeset='0-1'/>
    <memnode cellid='1' mode='preferred' nodeset='1'/>
  </numatune>
  <cpu>
    <numa>
      <cell id='0' cpus='0' memory='1' unit='GiB'/>
      <cell id='1' cpus='1' memory='1' unit='GiB'/>
    </numa>
  </cpu>
</domain>`))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(d.Summary())

	_, err = domxml.Parse([]byte(`<domain><vcpu>1</vcpu><memory>1</memory><cputune><shares>2048</shares></cputune></domain>`))
	fmt.Println(errors.Is(err, domxml.ErrUnsupported), err)
	// Output:
	// domain "web"
	// vcpus 2 of 2, placement static
	// memory 2 GiB
	// numatune memory: strict on host nodes 0-1 (memory)
	// cell 0: vcpus 0, 1 GiB, strict on host nodes 0-1 (memory), private
	// cell 1: vcpus 1, 1 GiB, preferred on host nodes 1 (memnode), private
	// true not supported by qnuma: <cputune><shares>: an element qnuma does not honour; remove it or place the VM with libvirt
}
