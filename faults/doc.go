//go:build faults

// Package faults is the fault-injection suite: it runs the real server
// binary (built from this tree) on real redis-server processes on loopback
// (a single server, Sentinel with replicas, Cluster with replicas) and on
// bbolt, writes keys through the admin API while a reader fetches them
// through the delivery plane, disturbs the store or the server (SIGKILL,
// SIGSTOP, CLIENT PAUSE, DEBUG SLEEP, a failover, lagging replicas, a full
// disk, a killed server), and checks the acknowledged-write ledger: every
// key answered 2xx is read back with the same bytes after recovery and
// again after a restart, readers see only 200 or 503 for keys that exist,
// and retried writes never get 409 for their own earlier attempt. The 503
// windows and the recovery times are reported (a table at the end of the
// run); the bounds on them are asserted in the long form (see -long and
// docs/reliability.md).
//
// It is built only with the tag faults:
//
//	go test -tags faults ./faults/            # the short form (scripts/test.sh)
//	go test -tags faults ./faults/ -long      # the long form (make faults)
//
// It needs redis-server (Debian package redis-server), and for the
// full-disk scenario unshare and mount (util-linux) to mount a small tmpfs
// in a private mount namespace, or prlimit (util-linux) to cap the file
// size instead (FAULTS_FULL_DISK=prlimit chooses it where both work).
package faults
