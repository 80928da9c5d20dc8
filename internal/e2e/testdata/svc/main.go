// Command svc is the component the end-to-end tests deploy: a small
// long-running process that keeps a journal in its working folder, can
// serve a health endpoint, and can be told to fail in the ways a bad
// release fails.
//
//	svc --marker M [--listen ADDR] [--greeting G] [--exit-now] [--unhealthy] [--tick D]
//
// --marker only labels the process in /proc/PID/cmdline, so that a test can
// count the copies of a component that run. Each start appends
// "start <pid> <version> <greeting>" to ./journal (the version is
// $SVC_VERSION), which is how a test sees that a work folder survived.
// --tick D prints "tick N" (N = 1, 2, …) every D, for tests that check
// no line of output is lost.
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	flag.String("marker", "", "a label for the process list; unused")
	listen := flag.String("listen", "", "serve GET /healthz on this address")
	greeting := flag.String("greeting", "", "written to the journal")
	exitNow := flag.Bool("exit-now", false, "exit with status 3 at once")
	unhealthy := flag.Bool("unhealthy", false, "answer /healthz with 503")
	tick := flag.Duration("tick", 0, "print a numbered line this often")
	flag.Parse()

	if *exitNow {
		fmt.Fprintln(os.Stderr, "svc: told to fail at once")
		os.Exit(3)
	}
	f, err := os.OpenFile("journal", os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, "svc:", err)
		os.Exit(1)
	}
	fmt.Fprintf(f, "start %d %s %s\n", os.Getpid(), os.Getenv("SVC_VERSION"), *greeting)
	f.Close()
	fmt.Printf("svc %s up as pid %d, greeting %q\n", os.Getenv("SVC_VERSION"), os.Getpid(), *greeting)

	if *listen != "" {
		l, err := net.Listen("tcp", *listen)
		if err != nil {
			fmt.Fprintln(os.Stderr, "svc:", err)
			os.Exit(1)
		}
		mux := http.NewServeMux()
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
			if *unhealthy {
				http.Error(w, "unhealthy on purpose", http.StatusServiceUnavailable)
				return
			}
			fmt.Fprintln(w, "ok")
		})
		go func() { _ = http.Serve(l, mux) }()
	}

	if *tick > 0 {
		go func() {
			for n := 1; ; n++ {
				fmt.Printf("tick %d\n", n)
				time.Sleep(*tick)
			}
		}()
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	s := <-sig
	fmt.Printf("svc: %v, bye\n", s)
}
