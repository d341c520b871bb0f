//! Spin's outbound Redis (`fermyon:spin/redis@2.0.0`,
//! `spin:redis/redis@3.0.0`): connections to the servers the component's
//! `allowed_outbound_hosts` allow (`redis://host:port`); any other address
//! is `invalid-address`, as in Spin.

use super::bindings::spin::redis::redis as v3;
use super::bindings::v2::redis as v2;
use super::handles::HandleTable;
use crate::spin::ComponentSpec;
use redis::aio::MultiplexedConnection;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::{Accessor, HasData, HasSelf, Linker, Resource};

/// Connections open at once in one invocation.
const MAX_CONNECTIONS: usize = 16;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Per invocation: the connections the component opened.
pub struct RedisState {
    spec: Arc<ComponentSpec>,
    open: HandleTable<Connection>,
    /// Bytes one command may read: the invocation's memory limit, which no
    /// reply it could use can exceed.
    read_budget: u64,
}

/// One open connection. Dropping it (the guest's `drop`, or the end of the
/// invocation) ends its driver task and closes the socket: redis-rs's
/// driver alone would wait forever on a command left in flight.
struct Connection {
    conn: MultiplexedConnection,
    /// Bytes the connection may still read; set back to the budget before
    /// each command (see [`BudgetedRead`]).
    left: Arc<AtomicU64>,
    driver: tokio::task::AbortHandle,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// Errors both versions share.
enum RedisError {
    InvalidAddress,
    TooManyConnections,
    TypeError,
    Other(String),
}

/// A command's answer, in both versions' terms.
enum Answer {
    Nil,
    Status(String),
    Int(i64),
    Binary(Vec<u8>),
}

/// A command argument.
enum Arg {
    Int(i64),
    Binary(Vec<u8>),
}

fn other(err: redis::RedisError) -> RedisError {
    if err.kind() == redis::ErrorKind::TypeError {
        return RedisError::TypeError;
    }
    RedisError::Other(err.to_string())
}

impl RedisState {
    pub fn new(spec: Arc<ComponentSpec>, read_budget: u64) -> Self {
        Self {
            spec,
            open: HandleTable::new(MAX_CONNECTIONS),
            read_budget,
        }
    }

    /// The client for `address`, if the component may connect to it, and
    /// the handle reserved for it; the table's `settle` keeps the
    /// connection made outside the store.
    fn begin_open(&mut self, address: &str) -> Result<(Connect, u32), RedisError> {
        if !self.spec.allowed_hosts.allows_url(address) {
            return Err(RedisError::InvalidAddress);
        }
        let client = redis::Client::open(address).map_err(|_| RedisError::InvalidAddress)?;
        let handle = self.open.reserve().ok_or(RedisError::TooManyConnections)?;
        let connect = Connect {
            client,
            read_budget: self.read_budget,
        };
        Ok((connect, handle))
    }

    /// The connection behind `rep`, for one command: its read budget is
    /// renewed, so the bound is on what a command reads, not on what the
    /// connection reads over the invocation.
    fn conn(&self, rep: u32) -> wasmtime::Result<MultiplexedConnection> {
        let open = self
            .open
            .get(rep)
            .ok_or_else(|| wasmtime::format_err!("unknown Redis connection handle"))?;
        open.left.store(self.read_budget, Ordering::Relaxed);
        Ok(open.conn.clone())
    }

    fn close(&mut self, rep: u32) {
        self.open.release(rep);
    }

    async fn open_address(&mut self, address: &str) -> Result<u32, RedisError> {
        let (connect, handle) = self.begin_open(address)?;
        let conn = connect.run().await;
        self.open.settle(handle, conn)
    }
}

/// A connection to make, outside the store.
struct Connect {
    client: redis::Client,
    read_budget: u64,
}

impl Connect {
    /// Connects over a socket whose reads are budgeted (see
    /// [`BudgetedRead`]): redis-rs reads a reply whole before answering,
    /// whatever its size, so without it one `GET` of a huge value (Redis
    /// allows 512 MiB) would be held in the host's memory before the guest
    /// could refuse it.
    async fn run(self) -> Result<Connection, RedisError> {
        let info = self.client.get_connection_info();
        let redis::ConnectionAddr::Tcp(host, port) = &info.addr else {
            return Err(RedisError::InvalidAddress);
        };
        let connect = async {
            let tcp = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
            tcp.set_nodelay(true)?;
            let (read, write) = tcp.into_split();
            let left = Arc::new(AtomicU64::new(self.read_budget));
            let read = BudgetedRead {
                inner: read,
                left: left.clone(),
            };
            let (conn, driver) =
                MultiplexedConnection::new(&info.redis, tokio::io::join(read, write))
                    .await
                    .map_err(std::io::Error::other)?;
            let driver = tokio::spawn(driver).abort_handle();
            Ok::<_, std::io::Error>(Connection { conn, left, driver })
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(err)) => Err(RedisError::Other(format!("cannot connect: {err}"))),
            Err(_) => Err(RedisError::Other("cannot connect: timed out".into())),
        }
    }
}

/// A socket's read half that fails, rather than ending, once the budget
/// of the command under way is spent, so that command gets a reason. A
/// read may pass the budget by what it was offered at once (the reader's
/// buffer), never by a whole reply.
struct BudgetedRead {
    inner: tokio::net::tcp::OwnedReadHalf,
    left: Arc<AtomicU64>,
}

impl tokio::io::AsyncRead for BudgetedRead {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if self.left.load(Ordering::Relaxed) == 0 && buf.remaining() > 0 {
            return std::task::Poll::Ready(Err(std::io::Error::other(
                "Redis replies larger than the function's memory limit are refused",
            )));
        }
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = (buf.filled().len() - before) as u64;
        // Saturating: a read may overshoot what was left.
        let _ = self
            .left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                Some(left.saturating_sub(read))
            });
        polled
    }
}

/// The commands, shared by both versions.
mod ops {
    use super::*;

    pub async fn publish(
        mut c: MultiplexedConnection,
        channel: String,
        payload: Vec<u8>,
    ) -> Result<(), RedisError> {
        redis::cmd("PUBLISH")
            .arg(channel)
            .arg(payload)
            .query_async::<i64>(&mut c)
            .await
            .map(drop)
            .map_err(other)
    }

    pub async fn get(
        mut c: MultiplexedConnection,
        key: String,
    ) -> Result<Option<Vec<u8>>, RedisError> {
        redis::cmd("GET")
            .arg(key)
            .query_async(&mut c)
            .await
            .map_err(other)
    }

    pub async fn set(
        mut c: MultiplexedConnection,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), RedisError> {
        redis::cmd("SET")
            .arg(key)
            .arg(value)
            .query_async::<()>(&mut c)
            .await
            .map_err(other)
    }

    pub async fn incr(mut c: MultiplexedConnection, key: String) -> Result<i64, RedisError> {
        redis::cmd("INCR")
            .arg(key)
            .query_async(&mut c)
            .await
            .map_err(other)
    }

    pub async fn del(mut c: MultiplexedConnection, keys: Vec<String>) -> Result<u32, RedisError> {
        redis::cmd("DEL")
            .arg(keys)
            .query_async(&mut c)
            .await
            .map_err(other)
    }

    pub async fn sadd(
        mut c: MultiplexedConnection,
        key: String,
        values: Vec<String>,
    ) -> Result<u32, RedisError> {
        redis::cmd("SADD")
            .arg(key)
            .arg(values)
            .query_async(&mut c)
            .await
            .map_err(other)
    }

    pub async fn smembers(
        mut c: MultiplexedConnection,
        key: String,
    ) -> Result<Vec<String>, RedisError> {
        redis::cmd("SMEMBERS")
            .arg(key)
            .query_async(&mut c)
            .await
            .map_err(other)
    }

    pub async fn srem(
        mut c: MultiplexedConnection,
        key: String,
        values: Vec<String>,
    ) -> Result<u32, RedisError> {
        redis::cmd("SREM")
            .arg(key)
            .arg(values)
            .query_async(&mut c)
            .await
            .map_err(other)
    }

    pub async fn execute(
        mut c: MultiplexedConnection,
        command: String,
        args: Vec<Arg>,
    ) -> Result<Vec<Answer>, RedisError> {
        let mut cmd = redis::cmd(&command);
        for arg in args {
            match arg {
                Arg::Int(i) => cmd.arg(i),
                Arg::Binary(b) => cmd.arg(b),
            };
        }
        let value: redis::Value = cmd.query_async(&mut c).await.map_err(other)?;
        let mut out = Vec::new();
        flatten(value, &mut out);
        Ok(out)
    }

    /// Spin's shape: a reply is a list of scalars, nested replies inlined.
    fn flatten(value: redis::Value, out: &mut Vec<Answer>) {
        use redis::Value as V;
        match value {
            V::Nil => out.push(Answer::Nil),
            V::Int(i) => out.push(Answer::Int(i)),
            V::BulkString(b) => out.push(Answer::Binary(b)),
            V::SimpleString(s) => out.push(Answer::Status(s)),
            V::Okay => out.push(Answer::Status("OK".into())),
            V::Array(items) | V::Set(items) => items.into_iter().for_each(|i| flatten(i, out)),
            V::Map(pairs) => pairs.into_iter().for_each(|(k, v)| {
                flatten(k, out);
                flatten(v, out);
            }),
            V::Boolean(b) => out.push(Answer::Int(i64::from(b))),
            V::Double(d) => out.push(Answer::Status(d.to_string())),
            V::VerbatimString { text, .. } => out.push(Answer::Status(text)),
            other => out.push(Answer::Status(format!("{other:?}"))),
        }
    }
}

macro_rules! conversions {
    ($m:ident) => {
        impl From<RedisError> for $m::Error {
            fn from(e: RedisError) -> Self {
                match e {
                    RedisError::InvalidAddress => $m::Error::InvalidAddress,
                    RedisError::TooManyConnections => $m::Error::TooManyConnections,
                    RedisError::TypeError => $m::Error::TypeError,
                    RedisError::Other(m) => $m::Error::Other(m),
                }
            }
        }

        impl From<Answer> for $m::RedisResult {
            fn from(a: Answer) -> Self {
                match a {
                    Answer::Nil => $m::RedisResult::Nil,
                    Answer::Status(s) => $m::RedisResult::Status(s),
                    Answer::Int(i) => $m::RedisResult::Int64(i),
                    Answer::Binary(b) => $m::RedisResult::Binary(b),
                }
            }
        }

        impl From<$m::RedisParameter> for Arg {
            fn from(p: $m::RedisParameter) -> Self {
                match p {
                    $m::RedisParameter::Int64(i) => Arg::Int(i),
                    $m::RedisParameter::Binary(b) => Arg::Binary(b),
                }
            }
        }
    };
}

conversions!(v2);
conversions!(v3);

fn answer<T, U: From<T>, E: From<RedisError>>(r: Result<T, RedisError>) -> Result<U, E> {
    r.map(Into::into).map_err(Into::into)
}

impl v2::Host for RedisState {}

impl v2::HostConnection for RedisState {
    async fn open(
        &mut self,
        address: String,
    ) -> wasmtime::Result<Result<Resource<v2::Connection>, v2::Error>> {
        Ok(self
            .open_address(&address)
            .await
            .map(Resource::new_own)
            .map_err(Into::into))
    }

    async fn publish(
        &mut self,
        c: Resource<v2::Connection>,
        channel: String,
        payload: Vec<u8>,
    ) -> wasmtime::Result<Result<(), v2::Error>> {
        Ok(answer(
            ops::publish(self.conn(c.rep())?, channel, payload).await,
        ))
    }

    async fn get(
        &mut self,
        c: Resource<v2::Connection>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, v2::Error>> {
        Ok(answer(ops::get(self.conn(c.rep())?, key).await))
    }

    async fn set(
        &mut self,
        c: Resource<v2::Connection>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), v2::Error>> {
        Ok(answer(ops::set(self.conn(c.rep())?, key, value).await))
    }

    async fn incr(
        &mut self,
        c: Resource<v2::Connection>,
        key: String,
    ) -> wasmtime::Result<Result<i64, v2::Error>> {
        Ok(answer(ops::incr(self.conn(c.rep())?, key).await))
    }

    async fn del(
        &mut self,
        c: Resource<v2::Connection>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<u32, v2::Error>> {
        Ok(answer(ops::del(self.conn(c.rep())?, keys).await))
    }

    async fn sadd(
        &mut self,
        c: Resource<v2::Connection>,
        key: String,
        values: Vec<String>,
    ) -> wasmtime::Result<Result<u32, v2::Error>> {
        Ok(answer(ops::sadd(self.conn(c.rep())?, key, values).await))
    }

    async fn smembers(
        &mut self,
        c: Resource<v2::Connection>,
        key: String,
    ) -> wasmtime::Result<Result<Vec<String>, v2::Error>> {
        Ok(answer(ops::smembers(self.conn(c.rep())?, key).await))
    }

    async fn srem(
        &mut self,
        c: Resource<v2::Connection>,
        key: String,
        values: Vec<String>,
    ) -> wasmtime::Result<Result<u32, v2::Error>> {
        Ok(answer(ops::srem(self.conn(c.rep())?, key, values).await))
    }

    async fn execute(
        &mut self,
        c: Resource<v2::Connection>,
        command: String,
        arguments: Vec<v2::RedisParameter>,
    ) -> wasmtime::Result<Result<Vec<v2::RedisResult>, v2::Error>> {
        let args = arguments.into_iter().map(Into::into).collect();
        Ok(ops::execute(self.conn(c.rep())?, command, args)
            .await
            .map(|answers| answers.into_iter().map(Into::into).collect())
            .map_err(Into::into))
    }

    async fn drop(&mut self, c: Resource<v2::Connection>) -> wasmtime::Result<()> {
        self.close(c.rep());
        Ok(())
    }
}

/// 3.0's functions are async: they reach the state through an [`Accessor`].
pub struct RedisV3;

impl HasData for RedisV3 {
    type Data<'a> = &'a mut RedisState;
}

impl v3::Host for RedisState {}

impl v3::HostConnection for RedisState {
    async fn drop(&mut self, c: Resource<v3::Connection>) -> wasmtime::Result<()> {
        self.close(c.rep());
        Ok(())
    }
}

fn conn_of<T: Send>(
    a: &Accessor<T, RedisV3>,
    c: &Resource<v3::Connection>,
) -> wasmtime::Result<MultiplexedConnection> {
    a.with(|mut access| access.get().conn(c.rep()))
}

impl<T: Send> v3::HostConnectionWithStore<T> for RedisV3 {
    async fn open(
        a: &Accessor<T, Self>,
        address: String,
    ) -> wasmtime::Result<Result<Resource<v3::Connection>, v3::Error>> {
        let (connect, handle) = match a.with(|mut access| access.get().begin_open(&address)) {
            Ok(begun) => begun,
            Err(err) => return Ok(Err(err.into())),
        };
        let conn = connect.run().await;
        Ok(a.with(|mut access| access.get().open.settle(handle, conn))
            .map(Resource::new_own)
            .map_err(Into::into))
    }

    async fn publish(
        a: &Accessor<T, Self>,
        c: Resource<v3::Connection>,
        channel: String,
        payload: Vec<u8>,
    ) -> wasmtime::Result<Result<(), v3::Error>> {
        Ok(answer(
            ops::publish(conn_of(a, &c)?, channel, payload).await,
        ))
    }

    async fn get(
        a: &Accessor<T, Self>,
        c: Resource<v3::Connection>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, v3::Error>> {
        Ok(answer(ops::get(conn_of(a, &c)?, key).await))
    }

    async fn set(
        a: &Accessor<T, Self>,
        c: Resource<v3::Connection>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), v3::Error>> {
        Ok(answer(ops::set(conn_of(a, &c)?, key, value).await))
    }

    async fn incr(
        a: &Accessor<T, Self>,
        c: Resource<v3::Connection>,
        key: String,
    ) -> wasmtime::Result<Result<i64, v3::Error>> {
        Ok(answer(ops::incr(conn_of(a, &c)?, key).await))
    }

    async fn del(
        a: &Accessor<T, Self>,
        c: Resource<v3::Connection>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<u32, v3::Error>> {
        Ok(answer(ops::del(conn_of(a, &c)?, keys).await))
    }

    async fn sadd(
        a: &Accessor<T, Self>,
        c: Resource<v3::Connection>,
        key: String,
        values: Vec<String>,
    ) -> wasmtime::Result<Result<u32, v3::Error>> {
        Ok(answer(ops::sadd(conn_of(a, &c)?, key, values).await))
    }

    async fn smembers(
        a: &Accessor<T, Self>,
        c: Resource<v3::Connection>,
        key: String,
    ) -> wasmtime::Result<Result<Vec<String>, v3::Error>> {
        Ok(answer(ops::smembers(conn_of(a, &c)?, key).await))
    }

    async fn srem(
        a: &Accessor<T, Self>,
        c: Resource<v3::Connection>,
        key: String,
        values: Vec<String>,
    ) -> wasmtime::Result<Result<u32, v3::Error>> {
        Ok(answer(ops::srem(conn_of(a, &c)?, key, values).await))
    }

    async fn execute(
        a: &Accessor<T, Self>,
        c: Resource<v3::Connection>,
        command: String,
        arguments: Vec<v3::RedisParameter>,
    ) -> wasmtime::Result<Result<Vec<v3::RedisResult>, v3::Error>> {
        let args = arguments.into_iter().map(Into::into).collect();
        Ok(ops::execute(conn_of(a, &c)?, command, args)
            .await
            .map(|answers| answers.into_iter().map(Into::into).collect())
            .map_err(Into::into))
    }
}

pub fn link<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut RedisState,
) -> wasmtime::Result<()> {
    v2::add_to_linker::<T, HasSelf<RedisState>>(linker, get)?;
    v3::add_to_linker::<T, RedisV3>(linker, get)
}
