//go:build faults

package faults

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keydelivery/keydelivery/internal/redistest"
	"github.com/keydelivery/keydelivery/internal/waittest"
	"github.com/keydelivery/keydelivery/keystore"
)

// sizes of a run, by form.
type sizes struct {
	warm, after int           // acknowledged writes before the fault, and after recovery
	hold        time.Duration // how long a fault lasts (a stop, a pause)
	pace        time.Duration // between creates
	rounds      int           // faults per scenario
}

func form() sizes {
	if *long {
		return sizes{warm: 400, after: 400, hold: 5 * time.Second, pace: 0, rounds: 3}
	}
	return sizes{warm: 60, after: 40, hold: 1500 * time.Millisecond, pace: 5 * time.Millisecond, rounds: 1}
}

// Bounds the issue states (issue 11): no read later than --store-timeout
// plus 250 ms, service for failed-over Cluster slots back within 2 s of
// the cluster's own failover. Asserted in the long form; the short form
// reports them and asserts only ceilings wide enough that a busy machine
// cannot reach them, but the faults they guard against (reads held for
// seconds past the deadline, a slot map reloaded once a minute) do.
const (
	readBound           = storeTimeout + 250*time.Millisecond
	readCeilingShort    = storeTimeout + 2*time.Second
	failoverBound       = 2 * time.Second
	failoverCeilingShrt = 15 * time.Second
)

// run is one scenario: a server on store, a writer and readers, rounds of
// fault (which returns when the fault is over, or the store's own failover
// is done: the time recovery is counted from, and a note), then the
// ledger read back, and again after restart restarts what the scenario
// restarts (nil: the server only).
type run struct {
	name    string
	store   string
	extra   []string
	wrap    []string
	fault   func(t *testing.T, wl *workload) (time.Time, string)
	restart func(t *testing.T)
	// noRestart: the store does not outlive the server (a tmpfs in the
	// server's own mount namespace).
	noRestart bool
}

func (r run) exec(t *testing.T) {
	sz := form()
	m := newMaterial(t)
	srv := newServer(t, m, r.store, append([]string{"--store-adopt"}, r.extra...)...)
	srv.wrap = r.wrap
	srv.start(t)
	// Adopted once; a restart must find the store as it left it.
	srv.args = slices.DeleteFunc(srv.args, func(a string) bool { return a == "--store-adopt" })
	wl := startWorkload(t, srv, m, sz.pace, 2)
	wl.acked(sz.warm)
	var recovery time.Duration
	var notes []string
	var window time.Duration // the longest 503 window of a round
	for round := range sz.rounds {
		wl.ledger.nextRound()
		wl.st.mu.Lock()
		wl.st.firstR503, wl.st.lastR503 = time.Time{}, time.Time{}
		wl.st.mu.Unlock()
		end, note := r.fault(t, wl)
		at := wl.recovered(end)
		recovery = max(recovery, at.Sub(end))
		if note != "" {
			notes = append(notes, note)
		}
		wl.acked(wl.ledger.len() + sz.after)
		wl.st.mu.Lock()
		window = max(window, wl.readWindowLocked())
		wl.st.mu.Unlock()
		t.Logf("%s round %d: recovered %v after the fault (%s)", r.name, round+1, at.Sub(end).Round(time.Millisecond), note)
	}
	wl.stop()
	lost := wl.verify(srv)
	if !r.noRestart {
		srv.stop()
		if r.restart != nil {
			r.restart(t)
		}
		srv.start(t)
		lost += wl.verify(srv)
	}
	wl.checkViolations()
	maxRead := maxDuration(srv.readDurations())
	wl.st.mu.Lock()
	rw := row{Scenario: r.name, Acked: wl.ledger.len(), Lost: lost, Reads: wl.st.reads, Read503: wl.st.r503,
		ReadWindow: window, Write503: wl.st.write503, NotRepl: wl.st.notRepl, MaxRead: maxRead,
		Recovery: recovery, Note: strings.Join(notes, "; ")}
	reasons := fmt.Sprint(wl.st.reasons)
	wl.st.mu.Unlock()
	addRow(rw)
	t.Logf("%s: %+v; answers %s", r.name, rw, reasons)
	if lost > 0 {
		t.Errorf("%d acknowledged keys lost or changed", lost)
	}
	ceiling := readCeilingShort
	if *long || os.Getenv("FAULTS_BOUNDS") != "" {
		ceiling = readBound
	}
	if maxRead > ceiling {
		t.Errorf("the slowest read took %v on the server, over --store-timeout %v plus %v:\n%s", maxRead, storeTimeout, ceiling-storeTimeout,
			strings.Join(srv.slowReads(ceiling), "\n"))
	}
}

// readWindowLocked is the time from the first to the last 503 answer to a
// read in this round (wl.st.mu held).
func (wl *workload) readWindowLocked() time.Duration {
	if wl.st.firstR503.IsZero() {
		return 0
	}
	return wl.st.lastR503.Sub(wl.st.firstR503)
}

// sleepFor waits d (a fault's length: part of the scenario, not an
// assertion).
func sleepFor(d time.Duration) { time.Sleep(d) }

// TestStandalone: one redis-server with appendfsync always (the
// durability a server without replicas has), disturbed four ways.
func TestStandalone(t *testing.T) {
	sz := form()
	for _, c := range []struct {
		name  string
		fault func(t *testing.T, rs *redistest.Server) time.Time
	}{
		{"SIGKILL", func(t *testing.T, rs *redistest.Server) time.Time {
			rs.Kill(t)
			sleepFor(sz.hold)
			rs.Restart(t)
			return time.Now()
		}},
		{"SIGSTOP", func(t *testing.T, rs *redistest.Server) time.Time {
			rs.Signal(t, syscall.SIGSTOP)
			sleepFor(sz.hold)
			rs.Signal(t, syscall.SIGCONT)
			return time.Now()
		}},
		{"CLIENT PAUSE", func(t *testing.T, rs *redistest.Server) time.Time {
			ms := strconv.Itoa(int(sz.hold / time.Millisecond))
			rs.MustDo(t, "CLIENT", "PAUSE", ms, "ALL")
			sleepFor(sz.hold)
			return time.Now()
		}},
		{"DEBUG SLEEP", func(t *testing.T, rs *redistest.Server) time.Time {
			secs := strconv.FormatFloat(sz.hold.Seconds(), 'f', 1, 64)
			if _, err := rs.Do(t, "DEBUG", "SLEEP", secs); err != nil {
				t.Fatalf("DEBUG SLEEP: %v", err)
			}
			return time.Now()
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			rs := redistest.Start(t, redistest.Options{Persistence: true, ExtraArgs: []string{"--enable-debug-command", "yes"}})
			run{name: "standalone, " + c.name, store: rs.URL(),
				fault:   func(t *testing.T, _ *workload) (time.Time, string) { return c.fault(t, rs), "" },
				restart: func(t *testing.T) { rs.Restart(t) },
			}.exec(t)
		})
	}
}

// TestSentinel: a master with two replicas and three Sentinels; writes
// wait for a replica (--redis-wait-replicas auto).
func TestSentinel(t *testing.T) {
	sz := form()
	t.Run("kill the master", func(t *testing.T) {
		s := redistest.StartSentinel(t, redistest.SentinelOptions{Replicas: 2, Sentinels: 3})
		defer dumpOnFailure(t, s.Servers(), s.Sentinels)
		run{name: "Sentinel, master killed", store: s.URL(), fault: func(t *testing.T, wl *workload) (time.Time, string) {
			old := s.ServerAt(s.MasterAddr(t))
			killed := time.Now()
			old.Kill(t)
			at := waitNewMaster(t, s, old.Addr)
			sleepFor(sz.hold / 2)
			old.Restart(t) // comes back as a replica of the new master
			waitResynced(t, old)
			return at, fmt.Sprintf("failover %v", at.Sub(killed).Round(time.Millisecond))
		}}.exec(t)
	})
	t.Run("kill the master with the replicas lagging", func(t *testing.T) {
		s := redistest.StartSentinel(t, redistest.SentinelOptions{Replicas: 2, Sentinels: 3})
		run{name: "Sentinel, master killed, replicas lagging", store: s.URL(), fault: func(t *testing.T, wl *workload) (time.Time, string) {
			master := s.ServerAt(s.MasterAddr(t))
			var replicas []*redistest.Server
			for _, n := range s.Servers() {
				if n != master {
					replicas = append(replicas, n)
				}
			}
			// The replicas stop taking the stream; the writer goes on:
			// its writes reach the master only, and are not acknowledged.
			for _, r := range replicas {
				r.Signal(t, syscall.SIGSTOP)
			}
			before := wl.ledger.len()
			sleepFor(sz.hold)
			duringLag := wl.ledger.len() - before
			killed := time.Now()
			master.Kill(t)
			for _, r := range replicas {
				r.Signal(t, syscall.SIGCONT)
			}
			at := waitNewMaster(t, s, master.Addr)
			master.Restart(t) // rejoins as a replica and drops what it alone held
			waitResynced(t, master)
			return at, fmt.Sprintf("failover %v; %d writes acknowledged while the replicas lagged", at.Sub(killed).Round(time.Millisecond), duringLag)
		}}.exec(t)
	})
}

// waitResynced waits until n, restarted after it was killed, is a replica
// that finished its sync with its master: the topology is whole again, so
// the next round is a single fault, as each scenario means it to be.
//
// Without it, a round could kill the new master while the old one, back as
// its replica, was still asking for its sync: Redis Cluster promotes such a
// replica (it had just talked to its master), and the writes acknowledged
// while the master had no replica connected, which --redis-wait-replicas
// auto does not wait for, are lost with it (the long form lost 523 that
// way). That double fault is documented in docs/reliability.md, with
// --redis-wait-replicas 1 as what survives it.
func waitResynced(t *testing.T, n *redistest.Server) {
	t.Helper()
	waittest.For(t, "the restarted node "+n.Addr+" to finish its sync as a replica", func() bool {
		return n.Info(t, "replication", "role") == "slave" &&
			n.Info(t, "replication", "master_link_status") == "up" &&
			n.Info(t, "replication", "master_sync_in_progress") == "0"
	})
}

// dumpOnFailure logs the Redis nodes' logs when t failed, so that a lost
// write can be traced to the failover that lost it.
func dumpOnFailure(t *testing.T, groups ...[]*redistest.Server) {
	if !t.Failed() {
		return
	}
	for _, g := range groups {
		for _, n := range g {
			t.Logf("redis %s:\n%s", n.Addr, n.LogTail(60))
		}
	}
}

// waitNewMaster waits until the Sentinels name another master than old,
// which answers as one, and returns when it did.
func waitNewMaster(t *testing.T, s *redistest.Sentinel, old string) time.Time {
	var at time.Time
	waittest.For(t, "the Sentinels to fail over", func() bool {
		addr := s.MasterAddr(t)
		if addr == "" || addr == old {
			return false
		}
		n := s.ServerAt(addr)
		if n == nil || n.Info(t, "replication", "role") != "master" {
			return false
		}
		at = time.Now()
		return true
	})
	return at
}

// TestCluster: three masters with a replica each. A master is killed: its
// slots fail over to its replica, and only its keys are unavailable, only
// until then; creates of keys in other slots keep succeeding.
func TestCluster(t *testing.T) {
	for _, c := range []struct {
		name   string
		victim func(t *testing.T, cl *redistest.Cluster, wl *workload) *redistest.Server
	}{
		{"kill a master", func(t *testing.T, cl *redistest.Cluster, wl *workload) *redistest.Server {
			id, _, _ := wl.ledger.pick()
			return cl.MasterOf(t, keySlot("kd:key:"+id.String()))
		}},
		{"kill the master of the old single index", func(t *testing.T, cl *redistest.Cluster, _ *workload) *redistest.Server {
			return cl.MasterOf(t, keySlot("kd:index"))
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			sz := form()
			cl := redistest.StartCluster(t, redistest.ClusterOptions{Masters: 3, ReplicasPerMaster: 1})
			var downSlots func(keystore.KeyID) bool
			run{name: "Cluster, " + c.name, store: cl.URL(), fault: func(t *testing.T, wl *workload) (time.Time, string) {
				victim := c.victim(t, cl, wl)
				if victim == nil {
					t.Fatal("no master found")
				}
				owned := slotsOf(t, cl, victim)
				downSlots = func(id keystore.KeyID) bool { return owned[keySlot("kd:key:"+id.String())] }
				// Creates are labelled by whether their key is in the
				// victim's slots, during the outage.
				wl.st.mu.Lock()
				wl.st.marked = map[string]int{}
				wl.st.mark = func(id keystore.KeyID) string {
					if downSlots(id) {
						return "down"
					}
					return "up"
				}
				wl.st.mu.Unlock()
				probe := acknowledgedIn(wl, downSlots)
				// During the outage a second writer creates keys in the
				// other masters' slots only: they must keep succeeding.
				stopUp := make(chan struct{})
				upDone := make(chan struct{})
				go func() {
					defer close(upDone)
					for {
						select {
						case <-stopUp:
							return
						default:
						}
						var id keystore.KeyID
						var v [16]byte
						for {
							_, _ = rand.Read(id[:])
							if !downSlots(id) {
								break
							}
						}
						_, _ = rand.Read(v[:])
						wl.w.create(context.Background(), id, v)
					}
				}()
				killed := time.Now()
				victim.Kill(t)
				var failedOver time.Time
				waittest.For(t, "the cluster to fail the master over", func() bool {
					for slot := range owned {
						m := cl.MasterOf(t, slot)
						if m == nil || m == victim || !cl.ServesAsMaster(t, m) {
							return false
						}
						break
					}
					failedOver = time.Now()
					return true
				})
				close(stopUp)
				<-upDone
				wl.st.mu.Lock()
				wl.st.mark = nil
				wl.st.mu.Unlock()
				// The failed-over slots are served again: a key of theirs
				// is read, measured from the cluster's failover.
				var back time.Time
				waittest.For(t, "a key of the failed-over slots to be read", func() bool {
					if status := readOnce(wl, probe); status == 200 {
						back = time.Now()
						return true
					}
					time.Sleep(20 * time.Millisecond)
					return false
				})
				wl.st.mu.Lock()
				marked := fmt.Sprint(wl.st.marked)
				upOK, upOther := 0, 0
				for k, n := range wl.st.marked {
					if strings.HasPrefix(k, "up ") {
						if strings.HasPrefix(k, "up 201") || strings.HasPrefix(k, "up 200") {
							upOK += n
						} else {
							upOther += n
						}
					}
				}
				wl.st.mu.Unlock()
				back2 := back.Sub(failedOver)
				note := fmt.Sprintf("failover %v, slots back %v after it; creates during the outage by slot and first answer %s",
					failedOver.Sub(killed).Round(time.Millisecond), back2.Round(time.Millisecond), marked)
				if upOK == 0 {
					t.Errorf("no create of a key in another master's slots succeeded during the outage (%s)", marked)
				}
				if upOther > 0 {
					t.Errorf("creates of keys in other masters' slots failed during the outage: %s", marked)
				}
				limit := failoverCeilingShrt
				if *long {
					limit = failoverBound
				}
				if back2 > limit {
					t.Errorf("the failed-over slots were served %v after the cluster's failover, over %v", back2, limit)
				}
				sleepFor(sz.hold / 2)
				victim.Restart(t) // rejoins as a replica
				waitResynced(t, victim)
				return failedOver, note
			}}.exec(t)
		})
	}
}

// acknowledgedIn returns an acknowledged key for which in is true,
// waiting for one.
func acknowledgedIn(wl *workload, in func(keystore.KeyID) bool) keystore.KeyID {
	var id keystore.KeyID
	waittest.For(wl.t, "an acknowledged key in the slots", func() bool {
		for k := range wl.ledger.all() {
			if in(k) {
				id = k
				return true
			}
		}
		return false
	})
	return id
}

// readOnce reads id through the delivery plane and returns the status.
func readOnce(wl *workload, id keystore.KeyID) int {
	req, _ := http.NewRequest(http.MethodGet, wl.srv.delivery+"/keys/"+id.String(), nil)
	req.Header.Set("Authorization", "Bearer "+wl.m.token)
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// slotsOf returns the slots master serves.
func slotsOf(t *testing.T, cl *redistest.Cluster, master *redistest.Server) map[int]bool {
	out := map[int]bool{}
	v := master.MustDo(t, "CLUSTER", "SLOTS")
	arr, _ := v.([]any)
	for _, r := range arr {
		rng, _ := r.([]any)
		if len(rng) < 3 {
			continue
		}
		node, _ := rng[2].([]any)
		port, _ := node[1].(int64)
		if !strings.HasSuffix(master.Addr, ":"+strconv.FormatInt(port, 10)) {
			continue
		}
		lo, _ := rng[0].(int64)
		hi, _ := rng[1].(int64)
		for s := lo; s <= hi; s++ {
			out[int(s)] = true
		}
	}
	if len(out) == 0 {
		t.Fatalf("master %s serves no slot", master.Addr)
	}
	return out
}

// keySlot is Redis Cluster's slot of key (CRC-16/XMODEM of the hash tag,
// or the key; see the Redis Cluster specification).
func keySlot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for i := 0; i < len(key); i++ {
		crc ^= uint16(key[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc & 16383)
}

// TestBolt: the embedded store. The server is killed mid-stream and
// started again; the disk fills up and is freed, the server running on.
func TestBolt(t *testing.T) {
	sz := form()
	t.Run("kill the server", func(t *testing.T) {
		dir := t.TempDir()
		run{name: "bbolt, server killed", store: "bolt:" + filepath.Join(dir, "keys.db"), fault: func(t *testing.T, wl *workload) (time.Time, string) {
			wl.srv.kill()
			sleepFor(sz.hold / 3)
			wl.srv.start(t)
			return time.Now(), ""
		}}.exec(t)
	})
	t.Run("full disk", func(t *testing.T) {
		dir := t.TempDir()
		mnt := filepath.Join(dir, "small")
		if err := os.Mkdir(mnt, 0o700); err != nil {
			t.Fatal(err)
		}
		wrap, how := smallFilesystem(t, mnt)
		var extra []string
		if how == "prlimit" {
			// The limit is on every file the server writes: the audit
			// records go to a pipe instead.
			extra = []string{"--audit-log", "stdout"}
		}
		run{name: "bbolt, full disk (" + how + ")", store: "bolt:" + filepath.Join(mnt, "keys.db"), wrap: wrap, noRestart: true, extra: extra,
			fault: func(t *testing.T, wl *workload) (time.Time, string) {
				root := fmt.Sprintf("/proc/%d/root", wl.srv.pid())
				filler := filepath.Join(root, mnt, "filler")
				if how == "prlimit" {
					// The file size cap: lower it to the store's size now.
					st, err := os.Stat(filepath.Join(mnt, "keys.db"))
					if err != nil {
						t.Fatal(err)
					}
					setFsize(t, wl.srv.pid(), st.Size())
				} else {
					fill(t, filler)
				}
				// Writes now fail for lack of room: 503 store_full.
				defer func() {
					if t.Failed() {
						wl.st.mu.Lock()
						t.Logf("answers %v violations %v", wl.st.reasons, wl.st.violations)
						wl.st.mu.Unlock()
						var ls []string
						for _, l := range strings.Split(wl.srv.log.String(), "\n") {
							if strings.Contains(l, "ERROR") || strings.Contains(l, "api/keys") {
								ls = append(ls, l)
							}
						}
						t.Logf("server log:\n%s", tail(strings.Join(ls, "\n"), 5))
					}
				}()
				wl.st.mu.Lock()
				before := wl.st.reasons["write store_full"]
				wl.st.mu.Unlock()
				waittest.For(t, "a write refused as store_full", func() bool {
					wl.st.mu.Lock()
					defer wl.st.mu.Unlock()
					return wl.st.reasons["write store_full"] > before
				})
				sleepFor(sz.hold)
				wl.st.mu.Lock()
				full := wl.st.reasons["write store_full"] - before
				wl.st.mu.Unlock()
				if how == "prlimit" {
					setFsize(t, wl.srv.pid(), -1)
				} else if err := os.Remove(filler); err != nil {
					t.Fatal(err)
				}
				return time.Now(), fmt.Sprintf("%d writes answered 503 store_full", full)
			}}.exec(t)
	})
}

// smallFilesystem returns the command that runs the server with a 4 MiB
// tmpfs mounted on mnt in a mount namespace of its own (unshare, as root
// or in a user namespace), or, where that is not allowed, under a file
// size limit (prlimit): a full disk either way, to bbolt.
func smallFilesystem(t *testing.T, mnt string) ([]string, string) {
	wrap := []string{"unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
		`mount -t tmpfs -o size=4m tmpfs "$0" && exec "$@"`, mnt}
	probe := exec.Command(wrap[0], append(wrap[1:], "true")...)
	if out, err := probe.CombinedOutput(); err == nil && os.Getenv("FAULTS_FULL_DISK") != "prlimit" {
		return wrap, "4 MiB tmpfs"
	} else {
		t.Logf("unshare and mount are not allowed here (%v: %s); capping the file size with prlimit instead", err, strings.TrimSpace(string(out)))
	}
	if _, err := exec.LookPath("prlimit"); err != nil {
		t.Fatal("the full-disk scenario needs unshare and mount, or prlimit (util-linux): install util-linux")
	}
	return []string{"prlimit", "--fsize=unlimited:unlimited", "--"}, "prlimit"
}

// setFsize sets the file size limit of pid (-1: none).
func setFsize(t *testing.T, pid int, n int64) {
	v := "unlimited"
	if n >= 0 {
		v = strconv.FormatInt(n, 10)
	}
	if out, err := exec.Command("prlimit", "--pid", strconv.Itoa(pid), "--fsize="+v+":unlimited").CombinedOutput(); err != nil {
		t.Fatalf("prlimit: %v: %s", err, out)
	}
}

// fill writes path until the filesystem is full.
func fill(t *testing.T, path string) {
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling the small filesystem: %v", err)
			}
			break
		}
	}
	// What a page of its own still takes.
	for {
		if _, err := f.Write(buf[:512]); err != nil {
			return
		}
	}
}
