package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// readInput reads the file at path, or standard input for "-", refusing
// more than limit bytes. Errors never quote the content.
func (e *env) readInput(path string, limit int64) ([]byte, error) {
	if path != "-" {
		return readSmallFile(path, limit)
	}
	b, err := io.ReadAll(io.LimitReader(e.stdin, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading standard input: %w", err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("standard input holds more than %d bytes", limit)
	}
	return b, nil
}

// errExists refuses to overwrite path.
func errExists(path string) error {
	return fmt.Errorf("%s already exists; refusing to overwrite it (remove it or choose another path)", path)
}

// refuseExisting fails if anything, even a dangling symbolic link, is at
// path. It is checked before a request is made, so that nothing is exported
// only to be refused; createExclusive checks again when it writes.
func refuseExisting(path string) error {
	if _, err := os.Lstat(path); err == nil {
		return errExists(path)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// createExclusive writes data to a new file at path, readable and writable
// by its owner only (0600). It never overwrites anything, nor follows a
// symbolic link; a file it fails to write in full is removed.
func createExclusive(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return errExists(path)
	}
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// replaceFile writes data to path with mode 0600, replacing any file there
// in one step (a temporary file in the same directory, then a rename), so a
// reader never sees it half written.
func replaceFile(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(0o600)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
