//go:build race

package delivery

// raceEnabled: the race detector changes what allocates (sync.Pool drops
// a share of what it is given, instrumentation), so allocation counts are
// only checked without it.
const raceEnabled = true
