using System.Globalization;
using ERCache.Regional;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using StackExchange.Redis;

namespace ERCache.Redis;

/// <summary>
/// An <see cref="IRegionalStore"/> on Redis or Garnet through StackExchange.Redis. Each user's values live in one hash,
/// <c>ercache:{&lt;user&gt;}</c> (the braces are a cluster hash tag, so all of a user's values share a slot and no
/// command spans slots), with one field per model version. A lookup sends one <c>HGET</c> per user and a write one
/// <c>HSET</c> and one <c>PEXPIRE</c> per user, all pipelined in one batch: one round trip, valid on Redis Cluster. A
/// removal is one <c>HDEL</c> (one model) or <c>DEL</c> (every model).
/// </summary>
public sealed class RedisRegionalStore : IRegionalStore, IAsyncDisposable, IDisposable
{
    private readonly IConnectionMultiplexer _connection;
    private readonly bool _ownsConnection;
    private readonly int _database;

    /// <summary>Uses <paramref name="connection"/> (not disposed with the store).</summary>
    /// <param name="connection">A connection to Redis or Garnet.</param>
    /// <param name="database">The database number; -1 for the connection's default.</param>
    public RedisRegionalStore(IConnectionMultiplexer connection, int database = -1)
        : this(connection, database, ownsConnection: false)
    {
    }

    private RedisRegionalStore(IConnectionMultiplexer connection, int database, bool ownsConnection)
    {
        ArgumentNullException.ThrowIfNull(connection);
        _connection = connection;
        _database = database;
        _ownsConnection = ownsConnection;
    }

    /// <summary>Connects to <paramref name="connectionString"/> (StackExchange.Redis syntax, such as
    /// <c>127.0.0.1:6379</c>). The store is usable at once even when the server is down: the connection is retried in
    /// the background (<c>abortConnect=false</c>, every 500 ms after a loss), and lookups fail fast until it is up.</summary>
    /// <param name="connectionString">Where the server is.</param>
    /// <returns>A store that owns its connection and closes it on disposal.</returns>
    /// <exception cref="ArgumentException">The connection string does not parse.</exception>
    public static RedisRegionalStore Connect(string connectionString) => Connect(connectionString, NullLoggerFactory.Instance);

    /// <summary>Connects as <see cref="Connect(string)"/> does, and logs what happens to the connection through
    /// <paramref name="loggerFactory"/>: a lost or refused connection as a warning naming the endpoint, the failure type
    /// and the error; its restoration as information; StackExchange.Redis's own connection log as well.</summary>
    /// <param name="connectionString">Where the server is.</param>
    /// <param name="loggerFactory">Where the connection's events are logged.</param>
    /// <returns>A store that owns its connection and closes it on disposal.</returns>
    /// <exception cref="ArgumentException">The connection string does not parse.</exception>
    public static RedisRegionalStore Connect(string connectionString, ILoggerFactory loggerFactory)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(connectionString);
        ArgumentNullException.ThrowIfNull(loggerFactory);
        var options = ConfigurationOptions.Parse(connectionString);
        options.AbortOnConnectFail = false;
        options.ReconnectRetryPolicy = new LinearRetry(500); // a cache wants its store back soon, not after a long backoff
        if (!connectionString.Contains("connectTimeout", StringComparison.OrdinalIgnoreCase))
        {
            options.ConnectTimeout = 1000; // a dead store must not hold start-up for the default 5 s
        }

        options.LoggerFactory = loggerFactory;
        var logger = loggerFactory.CreateLogger<RedisRegionalStore>();

        var connection = ConnectionMultiplexer.Connect(options);
        if (!connection.IsConnected)
        {
            StoreLog.Unreachable(logger, options.EndPoints.FirstOrDefault(), ConnectionFailureType.UnableToConnect, "no connection at start-up", null);
        }

        connection.ConnectionFailed += (_, e) => StoreLog.Unreachable(logger, e.EndPoint, e.FailureType, e.Exception?.Message, e.Exception);
        connection.ConnectionRestored += (_, e) => StoreLog.Restored(logger, e.EndPoint);
        return new RedisRegionalStore(connection, -1, ownsConnection: true);
    }

    /// <summary>The hash a user's values are kept in.</summary>
    public static RedisKey KeyOf(long userId) => $"ercache:{{{userId.ToString(CultureInfo.InvariantCulture)}}}";

    /// <inheritdoc />
    public async Task<byte[]?[]> ReadAsync(string field, ReadOnlyMemory<long> users, CancellationToken cancellationToken)
    {
        var database = _connection.GetDatabase(_database);
        var batch = database.CreateBatch();
        var reads = new Task<RedisValue>[users.Length];
        for (int i = 0; i < reads.Length; i++)
        {
            reads[i] = batch.HashGetAsync(KeyOf(users.Span[i]), field);
        }

        batch.Execute();
        await Task.WhenAll(reads).WaitAsync(cancellationToken).ConfigureAwait(false);
        var values = new byte[]?[reads.Length];
        for (int i = 0; i < values.Length; i++)
        {
            var value = reads[i].Result;
            values[i] = value.IsNull ? null : (byte[]?)value;
        }

        return values;
    }

    /// <inheritdoc />
    public async Task WriteAsync(IReadOnlyList<RegionalWriteGroup> groups, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(groups);
        var database = _connection.GetDatabase(_database);
        var batch = database.CreateBatch();
        var writes = new Task[groups.Count * 2];
        for (int i = 0; i < groups.Count; i++)
        {
            var group = groups[i];
            var key = KeyOf(group.UserId);
            var fields = new HashEntry[group.Fields.Count];
            for (int f = 0; f < fields.Length; f++)
            {
                fields[f] = new HashEntry(group.Fields[f].Field, group.Fields[f].Value);
            }

            writes[2 * i] = batch.HashSetAsync(key, fields);
            writes[(2 * i) + 1] = batch.KeyExpireAsync(key, group.TimeToLive);
        }

        batch.Execute();
        await Task.WhenAll(writes).WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public Task RemoveAsync(long userId, string? field, CancellationToken cancellationToken)
    {
        var database = _connection.GetDatabase(_database);
        var removal = field is null ? database.KeyDeleteAsync(KeyOf(userId)) : (Task)database.HashDeleteAsync(KeyOf(userId), field);
        return removal.WaitAsync(cancellationToken);
    }

    /// <summary>Closes the connection when the store opened it.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_ownsConnection)
        {
            await _connection.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Closes the connection when the store opened it.</summary>
    public void Dispose()
    {
        if (_ownsConnection)
        {
            _connection.Dispose();
        }
    }
}
