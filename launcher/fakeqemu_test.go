package launcher

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// The test binary doubles as a misbehaving qemu: run with fakeQEMUEnv set,
// it serves (or fails to serve) the -qmp socket qnuma gives it. A real
// qemu cannot be made to stall or die mid-reply on demand.
const fakeQEMUEnv = "QNUMA_FAKE_QEMU"

func TestMain(m *testing.M) {
	if mode := os.Getenv(fakeQEMUEnv); mode != "" {
		os.Exit(fakeQEMU(mode, os.Args[1:]))
	}
	os.Exit(m.Run())
}

// fakeConn is qemu's end of qnuma's QMP socketpair, found as qemu would:
// -chardev socket,...,fd=N,server=off.
func fakeConn(args []string) (net.Conn, error) {
	for i, a := range args {
		if a != "-chardev" || i+1 == len(args) {
			continue
		}
		for _, kv := range strings.Split(args[i+1], ",") {
			if v, ok := strings.CutPrefix(kv, "fd="); ok {
				fd, err := strconv.Atoi(v)
				if err != nil {
					return nil, err
				}
				return net.FileConn(os.NewFile(uintptr(fd), "qmp"))
			}
		}
	}
	return nil, fmt.Errorf("no qmp fd given")
}

// fakeQEMU modes:
//
//	silent:        never greets; ignores SIGTERM
//	die-mid-reply: greets, then dies (SIGKILL) halfway through the reply
//	               to query-cpus-fast
//	stall-query:   greets, then never answers query-cpus-fast
//	ok:            answers as a paused qemu with one vCPU would
//	foreign-tid:   answers query-cpus-fast (and query-iothreads when
//	               QNUMA_FAKE_IOTHREAD is set) with the thread id in
//	               QNUMA_FAKE_TID, not one of its own
//	pipelined:     answers query-cpus-fast (one vCPU, its own pid) and
//	               query-iothreads only once both have come: a launcher
//	               that waits for one before sending the other stalls
//	greet-last:    greets only once qmp_capabilities, query-cpus-fast and
//	               query-iothreads have all come, then answers as ok: a
//	               launcher that waits for the greeting (or for one
//	               answer) before it asks stalls
func fakeQEMU(mode string, args []string) int {
	c, err := fakeConn(args)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake qemu:", err)
		return 1
	}
	defer c.Close()
	if mode == "silent" {
		signal.Ignore(syscall.SIGTERM)
		select {} // held open, never greeted
	}
	const greeting = `{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": ""}, "capabilities": []}}`
	in := bufio.NewScanner(c)
	if mode == "greet-last" {
		var got []string
		var ids []json.RawMessage
		for len(got) < 3 && in.Scan() {
			var req struct {
				Execute string          `json:"execute"`
				ID      json.RawMessage `json:"id"`
			}
			if json.Unmarshal(in.Bytes(), &req) != nil {
				return 1
			}
			got, ids = append(got, req.Execute), append(ids, req.ID)
		}
		if strings.Join(got, " ") != "qmp_capabilities query-cpus-fast query-iothreads" && strings.Join(got, " ") != "qmp_capabilities query-iothreads query-cpus-fast" {
			fmt.Fprintf(os.Stderr, "fake qemu: before the greeting got %q\n", got)
			return 1
		}
		fmt.Fprintln(c, greeting)
		for i, cmd := range got {
			switch cmd {
			case "query-cpus-fast":
				fmt.Fprintf(c, `{"return": [{"cpu-index": 0, "thread-id": %d, "props": {"core-id": 0}}], "id": %s}`+"\n", os.Getpid(), ids[i])
			case "query-iothreads":
				fmt.Fprintf(c, `{"return": [], "id": %s}`+"\n", ids[i])
			default:
				fmt.Fprintf(c, `{"return": {}, "id": %s}`+"\n", ids[i])
			}
		}
		mode = "ok"
	} else {
		fmt.Fprintln(c, greeting)
	}
	held := map[string]json.RawMessage{} // pipelined: ids of the queries not yet answered
	for in.Scan() {
		var req struct {
			Execute string          `json:"execute"`
			ID      json.RawMessage `json:"id"`
		}
		if err := json.Unmarshal(in.Bytes(), &req); err != nil {
			return 1
		}
		switch {
		case req.Execute == "quit":
			fmt.Fprintf(c, `{"return": {}, "id": %s}`+"\n", req.ID)
			return 0
		case mode == "die-mid-reply" && req.Execute == "query-cpus-fast":
			fmt.Fprintf(c, `{"return": [{"cpu-index": 0, "thread-id": %d, "props": {"core-`, os.Getpid())
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
		case mode == "stall-query" && req.Execute == "query-cpus-fast":
			continue // never answered
		case mode == "ok" && req.Execute == "query-cpus-fast":
			fmt.Fprintf(c, `{"return": [{"cpu-index": 0, "thread-id": %d, "props": {"core-id": 0}}], "id": %s}`+"\n", os.Getpid(), req.ID)
			continue
		case mode == "foreign-tid" && req.Execute == "query-cpus-fast":
			tid := os.Getpid()
			if os.Getenv("QNUMA_FAKE_IOTHREAD") == "" {
				tid, _ = strconv.Atoi(os.Getenv("QNUMA_FAKE_TID"))
			}
			fmt.Fprintf(c, `{"return": [{"cpu-index": 0, "thread-id": %d, "props": {"core-id": 0}}], "id": %s}`+"\n", tid, req.ID)
			continue
		case mode == "foreign-tid" && req.Execute == "query-iothreads" && os.Getenv("QNUMA_FAKE_IOTHREAD") != "":
			fmt.Fprintf(c, `{"return": [{"id": "io0", "thread-id": %s}], "id": %s}`+"\n", os.Getenv("QNUMA_FAKE_TID"), req.ID)
			continue
		case mode == "pipelined" && (req.Execute == "query-cpus-fast" || req.Execute == "query-iothreads"):
			held[req.Execute] = req.ID
			if len(held) < 2 {
				continue // unanswered until the other one comes
			}
			fmt.Fprintf(c, `{"return": [{"cpu-index": 0, "thread-id": %d, "props": {"core-id": 0}}], "id": %s}`+"\n", os.Getpid(), held["query-cpus-fast"])
			fmt.Fprintf(c, `{"return": [], "id": %s}`+"\n", held["query-iothreads"])
			continue
		case req.Execute == "query-iothreads":
			fmt.Fprintf(c, `{"return": [], "id": %s}`+"\n", req.ID)
			continue
		}
		fmt.Fprintf(c, `{"return": {}, "id": %s}`+"\n", req.ID)
	}
	return 1
}
