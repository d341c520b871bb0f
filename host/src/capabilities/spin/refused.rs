//! Spin interfaces SelfDB does not serve, answered with each interface's
//! own error so a component that imports them still deploys and learns at
//! run time: MQTT and MySQL connections fail to open, and LLM calls answer
//! `model-not-supported`. A connection never opens, so the methods on one
//! are unreachable: a handle reaching them is the host's error (a trap).

use super::bindings::spin::mqtt::mqtt as mqtt3;
use super::bindings::spin::mysql::mysql as mysql3;
use super::bindings::v2::{llm, mqtt as mqtt2, mysql as mysql2, rdbms_types};
use wasmtime::component::{
    Accessor, FutureReader, HasData, HasSelf, Linker, Resource, StreamReader,
};

const MQTT: &str = "MQTT is not supported by SelfDB";
const MYSQL: &str = "MySQL is not supported by SelfDB";

/// No state: every answer is the same.
pub struct Refused;

fn never() -> wasmtime::Error {
    wasmtime::format_err!("no such connection: none can be opened")
}

impl HasData for Refused {
    type Data<'a> = &'a mut Refused;
}

impl llm::Host for Refused {
    async fn infer(
        &mut self,
        _model: String,
        _prompt: String,
        _params: Option<llm::InferencingParams>,
    ) -> wasmtime::Result<Result<llm::InferencingResult, llm::Error>> {
        Ok(Err(llm::Error::ModelNotSupported))
    }

    async fn generate_embeddings(
        &mut self,
        _model: String,
        _text: Vec<String>,
    ) -> wasmtime::Result<Result<llm::EmbeddingsResult, llm::Error>> {
        Ok(Err(llm::Error::ModelNotSupported))
    }
}

impl mqtt2::Host for Refused {}

impl mqtt2::HostConnection for Refused {
    async fn open(
        &mut self,
        _address: String,
        _username: String,
        _password: String,
        _keep_alive: u64,
    ) -> wasmtime::Result<Result<Resource<mqtt2::Connection>, mqtt2::Error>> {
        Ok(Err(mqtt2::Error::ConnectionFailed(MQTT.into())))
    }

    async fn publish(
        &mut self,
        _connection: Resource<mqtt2::Connection>,
        _topic: String,
        _payload: Vec<u8>,
        _qos: mqtt2::Qos,
    ) -> wasmtime::Result<Result<(), mqtt2::Error>> {
        Err(never())
    }

    async fn drop(&mut self, _connection: Resource<mqtt2::Connection>) -> wasmtime::Result<()> {
        Ok(())
    }
}

impl mqtt3::Host for Refused {}

impl mqtt3::HostConnection for Refused {
    async fn drop(&mut self, _connection: Resource<mqtt3::Connection>) -> wasmtime::Result<()> {
        Ok(())
    }
}

impl<T: Send> mqtt3::HostConnectionWithStore<T> for Refused {
    async fn open(
        _accessor: &Accessor<T, Self>,
        _address: String,
        _username: String,
        _password: String,
        _keep_alive: u64,
    ) -> wasmtime::Result<Result<Resource<mqtt3::Connection>, mqtt3::Error>> {
        Ok(Err(mqtt3::Error::ConnectionFailed(MQTT.into())))
    }

    async fn publish(
        _accessor: &Accessor<T, Self>,
        _connection: Resource<mqtt3::Connection>,
        _topic: String,
        _payload: Vec<u8>,
        _qos: mqtt3::Qos,
    ) -> wasmtime::Result<Result<(), mqtt3::Error>> {
        Err(never())
    }
}

impl rdbms_types::Host for Refused {}

impl mysql2::Host for Refused {}

impl mysql2::HostConnection for Refused {
    async fn open(
        &mut self,
        _address: String,
    ) -> wasmtime::Result<Result<Resource<mysql2::Connection>, mysql2::Error>> {
        Ok(Err(mysql2::Error::ConnectionFailed(MYSQL.into())))
    }

    async fn query(
        &mut self,
        _connection: Resource<mysql2::Connection>,
        _statement: String,
        _params: Vec<mysql2::ParameterValue>,
    ) -> wasmtime::Result<Result<mysql2::RowSet, mysql2::Error>> {
        Err(never())
    }

    async fn execute(
        &mut self,
        _connection: Resource<mysql2::Connection>,
        _statement: String,
        _params: Vec<mysql2::ParameterValue>,
    ) -> wasmtime::Result<Result<(), mysql2::Error>> {
        Err(never())
    }

    async fn drop(&mut self, _connection: Resource<mysql2::Connection>) -> wasmtime::Result<()> {
        Ok(())
    }
}

impl mysql3::Host for Refused {}

impl mysql3::HostConnection for Refused {
    async fn drop(&mut self, _connection: Resource<mysql3::Connection>) -> wasmtime::Result<()> {
        Ok(())
    }
}

impl<T: Send> mysql3::HostConnectionWithStore<T> for Refused {
    async fn open(
        _accessor: &Accessor<T, Self>,
        _address: String,
    ) -> wasmtime::Result<Result<Resource<mysql3::Connection>, mysql3::Error>> {
        Ok(Err(mysql3::Error::ConnectionFailed(MYSQL.into())))
    }

    #[allow(clippy::type_complexity)]
    async fn query(
        _accessor: &Accessor<T, Self>,
        _connection: Resource<mysql3::Connection>,
        _statement: String,
        _params: Vec<mysql3::ParameterValue>,
    ) -> wasmtime::Result<
        Result<
            (
                Vec<mysql3::Column>,
                StreamReader<mysql3::Row>,
                FutureReader<Result<(), mysql3::Error>>,
            ),
            mysql3::Error,
        >,
    > {
        Err(never())
    }

    async fn execute(
        _accessor: &Accessor<T, Self>,
        _connection: Resource<mysql3::Connection>,
        _statement: String,
        _params: Vec<mysql3::ParameterValue>,
    ) -> wasmtime::Result<Result<(), mysql3::Error>> {
        Err(never())
    }
}

pub fn link<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut Refused,
) -> wasmtime::Result<()> {
    llm::add_to_linker::<T, HasSelf<Refused>>(linker, get)?;
    mqtt2::add_to_linker::<T, HasSelf<Refused>>(linker, get)?;
    mqtt3::add_to_linker::<T, Refused>(linker, get)?;
    rdbms_types::add_to_linker::<T, HasSelf<Refused>>(linker, get)?;
    mysql2::add_to_linker::<T, HasSelf<Refused>>(linker, get)?;
    mysql3::add_to_linker::<T, Refused>(linker, get)
}
