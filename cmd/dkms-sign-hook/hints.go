package main

import "os"

// hinters map an error to the one thing the user should do about it. Each
// command file may add its own in an init function; the first answer wins.
var hinters []func(error) string

func hintFor(err error) string {
	for _, h := range hinters {
		if s := h(err); s != "" {
			return s
		}
	}
	return ""
}

var osGetenv = os.Getenv
