package main

import "net/http"

// storeAdopt: kdctl store adopt
func (e *env) storeAdopt(args []string) error {
	fs := e.subFlags("store adopt", "")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	c, err := e.client()
	if err != nil {
		return err
	}
	b, err := c.do(e.ctx, http.MethodPost, nil, "api", "store", "adopt")
	if err != nil {
		return err
	}
	return printJSON(e.stdout, b)
}
