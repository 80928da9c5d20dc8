package mqtttest

import (
	"bytes"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/packets"
)

// memStore is mochi's persistence for a test: the storage hook events
// kept in memory, outside the server, so that a new server on the same
// address starts with the sessions (clients, subscriptions, messages in
// flight) and retained messages the old one had. mochi's own storage hooks
// need a database module; this needs nothing and dies with the test.
type memStore struct {
	mqtt.HookBase
	mu       sync.Mutex
	clients  map[string]storage.Client
	subs     map[string]storage.Subscription // by client + "\x00" + filter
	inflight map[string]storage.Message      // by client + "\x00" + packet id
	retained map[string]storage.Message      // by topic
}

func newMemStore() *memStore {
	return &memStore{
		clients:  map[string]storage.Client{},
		subs:     map[string]storage.Subscription{},
		inflight: map[string]storage.Message{},
		retained: map[string]storage.Message{},
	}
}

func (s *memStore) ID() string { return "keystone-memstore" }

func (s *memStore) Provides(b byte) bool {
	return bytes.Contains([]byte{
		mqtt.OnSessionEstablished, mqtt.OnDisconnect, mqtt.OnSubscribed, mqtt.OnUnsubscribed,
		mqtt.OnRetainMessage, mqtt.OnWillSent, mqtt.OnQosPublish, mqtt.OnQosComplete, mqtt.OnQosDropped,
		mqtt.OnClientExpired, mqtt.OnRetainedExpired,
		mqtt.StoredClients, mqtt.StoredSubscriptions, mqtt.StoredInflightMessages, mqtt.StoredRetainedMessages,
	}, []byte{b})
}

func (s *memStore) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) { s.putClient(cl) }

func (s *memStore) OnWillSent(cl *mqtt.Client, _ packets.Packet) { s.putClient(cl) }

func (s *memStore) putClient(cl *mqtt.Client) {
	props := cl.Properties.Props.Copy(false)
	c := storage.Client{
		ID: cl.ID, T: storage.ClientKey, Remote: cl.Net.Remote, Listener: cl.Net.Listener,
		Username: cl.Properties.Username, Clean: cl.Properties.Clean, ProtocolVersion: cl.Properties.ProtocolVersion,
		Properties: storage.ClientProperties{
			SessionExpiryInterval:     props.SessionExpiryInterval,
			SessionExpiryIntervalFlag: props.SessionExpiryIntervalFlag,
			ReceiveMaximum:            props.ReceiveMaximum,
			TopicAliasMaximum:         props.TopicAliasMaximum,
			MaximumPacketSize:         props.MaximumPacketSize,
			User:                      props.User,
		},
		Will: storage.ClientWill(cl.Properties.Will),
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clients[cl.ID] = c
}

// OnDisconnect forgets a client whose session ends with its connection;
// a session taken over by a new connection of the same client stays.
func (s *memStore) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	if !expire || cl.StopCause() == packets.ErrSessionTakenOver {
		return
	}
	s.dropClient(cl.ID)
}

func (s *memStore) OnClientExpired(cl *mqtt.Client) { s.dropClient(cl.ID) }

func (s *memStore) dropClient(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.clients, id)
	for k, sub := range s.subs {
		if sub.Client == id {
			delete(s.subs, k)
		}
	}
	for k, m := range s.inflight {
		if m.Client == id {
			delete(s.inflight, k)
		}
	}
}

func (s *memStore) OnSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range pk.Filters {
		if i >= len(codes) || codes[i] >= 0x80 {
			continue // refused: nothing to restore
		}
		s.subs[cl.ID+"\x00"+f.Filter] = storage.Subscription{
			T: storage.SubscriptionKey, Client: cl.ID, Filter: f.Filter, Qos: codes[i], Identifier: f.Identifier,
			NoLocal: f.NoLocal, RetainHandling: f.RetainHandling, RetainAsPublished: f.RetainAsPublished,
		}
	}
}

func (s *memStore) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range pk.Filters {
		delete(s.subs, cl.ID+"\x00"+f.Filter)
	}
}

// OnRetainMessage keeps a retained message; r is -1 when the publish
// cleared the topic's retained message.
func (s *memStore) OnRetainMessage(cl *mqtt.Client, pk packets.Packet, r int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r == -1 {
		delete(s.retained, pk.TopicName)
		return
	}
	s.retained[pk.TopicName] = message(cl, pk, storage.RetainedKey, 0)
}

func (s *memStore) OnRetainedExpired(topic string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.retained, topic)
}

func (s *memStore) OnQosPublish(cl *mqtt.Client, pk packets.Packet, sent int64, _ int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inflight[cl.ID+"\x00"+pk.FormatID()] = message(cl, pk, storage.InflightKey, sent)
}

func (s *memStore) OnQosComplete(cl *mqtt.Client, pk packets.Packet) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.inflight, cl.ID+"\x00"+pk.FormatID())
}

func (s *memStore) OnQosDropped(cl *mqtt.Client, pk packets.Packet) { s.OnQosComplete(cl, pk) }

func (s *memStore) StoredClients() ([]storage.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return values(s.clients), nil
}

func (s *memStore) StoredSubscriptions() ([]storage.Subscription, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return values(s.subs), nil
}

func (s *memStore) StoredInflightMessages() ([]storage.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return values(s.inflight), nil
}

func (s *memStore) StoredRetainedMessages() ([]storage.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return values(s.retained), nil
}

func message(cl *mqtt.Client, pk packets.Packet, kind string, sent int64) storage.Message {
	props := pk.Properties.Copy(false)
	return storage.Message{
		T: kind, Client: cl.ID, Origin: pk.Origin, FixedHeader: pk.FixedHeader, TopicName: pk.TopicName,
		Payload: append([]byte(nil), pk.Payload...), Created: pk.Created, Sent: sent, PacketID: pk.PacketID,
		Properties: storage.MessageProperties{
			PayloadFormat: props.PayloadFormat, PayloadFormatFlag: props.PayloadFormatFlag,
			MessageExpiryInterval: props.MessageExpiryInterval, ContentType: props.ContentType,
			ResponseTopic: props.ResponseTopic, CorrelationData: props.CorrelationData, User: props.User,
		},
	}
}

func values[K comparable, V any](m map[K]V) []V {
	out := make([]V, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}
