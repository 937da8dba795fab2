module github.com/qnuma/qnuma

go 1.26.0

require (
	github.com/alecthomas/kong v1.17.0
	github.com/digitalocean/go-libvirt v0.0.0-20261013170128-efbbdf578ac8
	golang.org/x/sys v0.49.0
	k8s.io/utils v0.0.0-20260707023825-cf1189d6abe3
)

require golang.org/x/crypto v0.48.0 // indirect
