// Package mqtttest gives tests a real MQTT v5 broker with mutual TLS: the
// mosquitto program when it is installed, else the mochi-mqtt broker in
// the test process. Both are set up the same way: a CA made for the test,
// a server certificate for 127.0.0.1 and localhost, client certificates
// whose common name is the MQTT username, and an access list that pins
// each device to <prefix>/<its id>/# and lets the controller identity use
// all of <prefix>/#, shared subscriptions included.
//
// It owns the broker's life in a test (Start, Stop, Restart on the same
// port, with or without the persisted sessions and retained messages),
// the certificates and key files of every identity, and Conn, a small
// autopaho client for tests that need to act as a device or a
// controller. Which broker runs is chosen by KEYSTONE_MQTT_BROKER
// (mosquitto or mochi); without it mosquitto is preferred. Each runs a
// test against both. Under CI=true a test that needs mosquitto fails when
// it is not installed, rather than skipping.
//
// The two brokers differ where MQTT lets them, and tests must allow for
// it: mosquitto grants a device a subscription outside its topics and
// delivers nothing through it, mochi refuses it (reason code 0x87); mochi
// sends a subscription's retained messages after its SUBACK (Conn.Subscribe
// waits for them); mochi re-sends the messages queued in a session sorted
// by the second they were made in, so their order within a second is lost;
// and mochi answers a SUBSCRIBE with 0x91 (packet identifier in use) while
// the messages it re-sends from a restored session hold the same
// identifier. mosquitto writes its persistence file when it stops, so a
// Restart keeps what it had; mochi's persistence lives in the Broker value
// (sessions, messages in flight and retained messages; not delayed wills
// or $SYS counters).
//
// It is for tests only: shipped binaries must not import it. It never
// touches a system broker or its files and listens on loopback only.
package mqtttest
