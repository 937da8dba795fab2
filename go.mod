module github.com/qnuma/qnuma

go 1.26.0

require (
	github.com/alecthomas/kong v1.17.0
	golang.org/x/sys v0.49.0
	k8s.io/utils v0.0.0-20260707023825-cf1189d6abe3
)
