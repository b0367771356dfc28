//! Every edge of a node, over the services: the internal gRPC servers ([`grpc`]), the public
//! HTTP routes ([`http`]: node, stat and ticket endpoints with one error table), the spear's
//! socket.io handlers ([`socketio`]), and the accept loop with the limits every public port
//! shares ([`serve`]). Nothing below this layer sees a request type.

pub mod grpc;
pub mod http;
pub mod serve;
pub mod socketio;
