// Package shim is what runs in a component's new process between fork and
// exec, and the protocol (Arg, RequestFD, ErrorFD, Request, Failure) the
// runner uses to talk to it. The runner starts an executable with Arg as
// its first argument, places it in its cgroups and sends a Request on fd
// RequestFD; Main joins the v1 groups on its exec thread, sets the rlimit,
// the credentials, no_new_privs and the seccomp filter and execs the
// target, or writes a Failure on fd ErrorFD and exits with FailedCode.
//
// The package is a leaf: it imports only the standard library and
// golang.org/x/sys/unix, so that a dedicated binary (cmd/keystone-shim)
// that links only it starts in a fraction of the agent's start time. It
// must not compile seccomp filters (the runner sends the compiled
// program), read configuration, log or keep state: it is one request, one
// exec.
package shim
