package boltstore

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"

	"github.com/keydelivery/keydelivery/keystore"
)

// TestFullDisk: the errors of a full disk, a quota or a file size limit are
// keystore.ErrFull (which is ErrUnavailable): as returned by the system,
// and as bbolt returns them after growing its file, with only their text
// left. Other errors are not.
func TestFullDisk(t *testing.T) {
	for _, c := range []struct {
		err  error
		full bool
	}{
		{&os.PathError{Op: "write", Path: "/data/keys.db", Err: syscall.ENOSPC}, true},
		{&os.PathError{Op: "write", Path: "/data/keys.db", Err: syscall.EDQUOT}, true},
		{&os.PathError{Op: "write", Path: "/data/keys.db", Err: syscall.EFBIG}, true},
		{fmt.Errorf("file resize error: %s", &os.PathError{Op: "truncate", Path: "/data/keys.db", Err: syscall.EFBIG}), true},
		{fmt.Errorf("file sync error: %s", &os.PathError{Op: "sync", Path: "/data/keys.db", Err: syscall.ENOSPC}), true},
		{&os.PathError{Op: "write", Path: "/data/keys.db", Err: syscall.EIO}, false},
		{errors.New("no space left on device, said someone"), false},
	} {
		got := full(c.err)
		if errors.Is(got, keystore.ErrFull) != c.full || (c.full && !errors.Is(got, keystore.ErrUnavailable)) {
			t.Errorf("full(%v) = %v, want full: %v", c.err, got, c.full)
		}
	}
	if full(nil) != nil {
		t.Error("full(nil) is not nil")
	}
}
