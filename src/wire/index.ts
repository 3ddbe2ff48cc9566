// The wire protocol (DESIGN §7): frames, messages, the codec and the connection state machine.
// Pure and socket-free; protocol/server and protocol/client carry it out over TCP or TLS.
export { FRAME_HEADER_BYTES, FLAG_MORE, FrameDecoder, encodeFrames, frameReserved } from './frame.js';
export { MessageDecoder, MessageEncoder } from './codec.js';
export * from './messages.js';
export { Connection, clientMac, serverMac, type ConnectionConfig, type ConnectionState, type Role, type Step } from './connection.js';
export { formatAddress, parseAddress, parseAddressList, type Address } from './address.js';
