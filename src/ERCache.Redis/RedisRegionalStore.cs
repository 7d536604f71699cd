using System.Globalization;
using ERCache.Regional;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using StackExchange.Redis;

namespace ERCache.Redis;

/// <summary>
/// An <see cref="IRegionalStore"/> on Redis or Garnet through StackExchange.Redis. Each user's values live in one hash,
/// <c>&lt;prefix&gt;:{&lt;user&gt;}</c> (the braces are a cluster hash tag, so all of a user's keys share a slot and no
/// command spans slots), with one field per model version; the stamps of those values and of removals live beside it in
/// <c>&lt;prefix&gt;:{&lt;user&gt;}:stamps</c>. The prefix (<see cref="KeyPrefix"/>, default <c>ercache</c>) is the
/// namespace: stores with different prefixes share nothing, not even the invalidation channel. A lookup sends one
/// <c>HGET</c> per user, pipelined in one batch; a key the server refuses to read is that user's miss. A write is one
/// Lua script per user (newer wins: a field is set only when its stamp is later than the stamp held for it and than the
/// user's last removal, atomically on the server), pipelined in one batch; a removal is one script too (delete, then
/// remember the removal's stamp). Valid on Redis, Redis Cluster and Garnet started with <c>--lua --lua-transaction-mode</c>
/// (without <c>--lua</c> Garnet runs no scripts: every write then fails, is counted as dropped and logged, and the
/// store's circuit opens; without <c>--lua-transaction-mode</c> its scripts are not atomic, and a write racing another
/// host's removal can bring the removed user back).
/// </summary>
public sealed class RedisRegionalStore : IRegionalStore, IRegionalInvalidation, IAsyncDisposable, IDisposable
{
    private readonly IConnectionMultiplexer _connection;
    private readonly bool _ownsConnection;
    private readonly int _database;
    private readonly string _invalidationChannel;
    private readonly ILogger _logger;
    private long _lastKeyErrorLog = long.MinValue / 2;
    private long _keyErrors;
    private bool _isCluster;

    /// <summary>The prefix of keys and channel when none is given.</summary>
    public const string DefaultKeyPrefix = "ercache";

    /// <summary>Uses <paramref name="connection"/> (not disposed with the store).</summary>
    /// <param name="connection">A connection to Redis or Garnet.</param>
    /// <param name="database">The database number; -1 for the connection's default.</param>
    public RedisRegionalStore(IConnectionMultiplexer connection, int database = -1)
        : this(connection, database, DefaultKeyPrefix, ownsConnection: false)
    {
    }

    /// <summary>Uses <paramref name="connection"/> (not disposed with the store), with its keys and channel under
    /// <paramref name="keyPrefix"/>.</summary>
    /// <param name="connection">A connection to Redis or Garnet.</param>
    /// <param name="database">The database number; -1 for the connection's default.</param>
    /// <param name="keyPrefix">The namespace: 1 to 100 characters, without braces.</param>
    /// <exception cref="ArgumentException"><paramref name="keyPrefix"/> is empty, too long or has a brace.</exception>
    public RedisRegionalStore(IConnectionMultiplexer connection, int database, string keyPrefix)
        : this(connection, database, keyPrefix, ownsConnection: false)
    {
    }

    private RedisRegionalStore(IConnectionMultiplexer connection, int database, string keyPrefix, bool ownsConnection, ILogger? logger = null)
    {
        _logger = logger ?? NullLogger.Instance;
        ArgumentNullException.ThrowIfNull(connection);
        ValidatePrefix(keyPrefix);
        _connection = connection;
        _database = database;
        _ownsConnection = ownsConnection;
        KeyPrefix = keyPrefix;
        _invalidationChannel = $"{keyPrefix}:invalidation";
    }

    /// <summary>The namespace of this store's keys and channel.</summary>
    public string KeyPrefix { get; }

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
    public static RedisRegionalStore Connect(string connectionString, ILoggerFactory loggerFactory) =>
        Connect(connectionString, loggerFactory, DefaultKeyPrefix);

    /// <summary>Connects as <see cref="Connect(string, ILoggerFactory)"/> does, with keys and channel under
    /// <paramref name="keyPrefix"/>.</summary>
    /// <param name="connectionString">Where the server is.</param>
    /// <param name="loggerFactory">Where the connection's events are logged.</param>
    /// <param name="keyPrefix">The namespace: 1 to 100 characters, without braces.</param>
    /// <returns>A store that owns its connection and closes it on disposal.</returns>
    /// <exception cref="ArgumentException">The connection string does not parse, or the prefix is not valid.</exception>
    public static RedisRegionalStore Connect(string connectionString, ILoggerFactory loggerFactory, string keyPrefix)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(connectionString);
        ArgumentNullException.ThrowIfNull(loggerFactory);
        ValidatePrefix(keyPrefix);
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
        return new RedisRegionalStore(connection, -1, keyPrefix, ownsConnection: true, logger);
    }

    /// <summary>A key the server refused to read (answered as a miss) or to write (those fields refused): counted, and
    /// logged at most every 10 s.</summary>
    private void OnKeyError(RedisKey key, Exception error, string operation)
    {
        long now = Environment.TickCount64;
        long last = Interlocked.Read(ref _lastKeyErrorLog);
        Interlocked.Increment(ref _keyErrors);
        if (now - last >= 10_000 && Interlocked.CompareExchange(ref _lastKeyErrorLog, now, last) == last)
        {
            StoreLog.KeyRefused(_logger, operation, key.ToString(), error.Message, Interlocked.Exchange(ref _keyErrors, 0));
        }
    }

    /// <summary>
    /// Waits for every command of a round trip. A command the server answered with an error of its own key (a key of
    /// another type, say) is that user's (the caller reads each task); anything else, such as a lost connection or
    /// the caller's cancellation, is the round trip's and is thrown.
    /// </summary>
    private static async Task WhenAllAnsweredAsync(Task[] commands, CancellationToken cancellationToken)
    {
        try
        {
            await Task.WhenAll(commands).WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (RedisServerException) when (commands.All(c => c.IsCompletedSuccessfully || c.Exception?.InnerException is RedisServerException))
        {
            // only keys' own errors: the callers count them per user
        }
    }

    private static void ValidatePrefix(string keyPrefix)
    {
        ArgumentNullException.ThrowIfNull(keyPrefix);
        if (string.IsNullOrWhiteSpace(keyPrefix) || keyPrefix.Length > 100 || keyPrefix.AsSpan().IndexOfAny('{', '}') >= 0)
        {
            throw new ArgumentException($"A key prefix must be 1 to 100 characters without braces (got '{keyPrefix}').", nameof(keyPrefix));
        }
    }

    // A value is written only when newer than what the store remembers for its field and for the user ('*').
    // KEYS: values, stamps. ARGV: time to live (ms), then (field, stamp, value) per field. Returns the fields not written.
    private const string WriteScript = """
        local never = -9007199254740991
        local removed = tonumber(redis.call('HGET', KEYS[2], '*') or never)
        local late, written = 0, 0
        for i = 2, #ARGV, 3 do
          local stamp = tonumber(ARGV[i + 1])
          local held = tonumber(redis.call('HGET', KEYS[2], ARGV[i]) or never)
          if stamp > held and stamp > removed then
            redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 2])
            redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
            written = written + 1
          else
            late = late + 1
          end
        end
        if written > 0 then
          redis.call('PEXPIRE', KEYS[1], ARGV[1])
          if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[1]) then redis.call('PEXPIRE', KEYS[2], ARGV[1]) end
        end
        return late
        """;

    // KEYS: values, stamps. ARGV: field ('' for every field), the removal's stamp, how long to remember it (ms).
    private const string RemoveScript = """
        local never = -9007199254740991
        local field = ARGV[1]
        if field == '' then
          redis.call('DEL', KEYS[1])
          field = '*'
        else
          redis.call('HDEL', KEYS[1], field)
        end
        local held = tonumber(redis.call('HGET', KEYS[2], field) or never)
        if tonumber(ARGV[2]) > held then redis.call('HSET', KEYS[2], field, ARGV[2]) end
        if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[3]) then redis.call('PEXPIRE', KEYS[2], ARGV[3]) end
        return 1
        """;

    /// <summary>The pub/sub channel removals, pushes and clears are announced on: on a Redis Cluster a sharded channel
    /// (<c>SSUBSCRIBE</c>/<c>SPUBLISH</c>, Redis 7 or later), so a message goes to the one node that owns the channel's
    /// slot instead of over the cluster bus to every node; elsewhere (Redis, Garnet) a plain channel. Known once the
    /// connection has reached a server (until then the plain channel, which no publish can reach yet either).</summary>
    public RedisChannel InvalidationChannel => IsCluster ? RedisChannel.Sharded(_invalidationChannel) : RedisChannel.Literal(_invalidationChannel);

    /// <summary>Whether the connection has found a cluster; remembered once found (a server's type stays known while
    /// it is disconnected, and a deployment does not change kind under a running host).</summary>
    private bool IsCluster
    {
        get
        {
            if (!_isCluster && _connection.GetServers().Any(s => s.ServerType == ServerType.Cluster))
            {
                _isCluster = true;
            }

            return _isCluster;
        }
    }

    /// <summary>The hash a user's values are kept in, under <see cref="DefaultKeyPrefix"/>.</summary>
    public static RedisKey KeyOf(long userId) => KeyOf(DefaultKeyPrefix, userId);

    /// <summary>The hash a user's values are kept in, under <paramref name="keyPrefix"/>.</summary>
    public static RedisKey KeyOf(string keyPrefix, long userId) => $"{keyPrefix}:{{{userId.ToString(CultureInfo.InvariantCulture)}}}";

    /// <summary>The hash the stamps of a user's values and removals are kept in, under <see cref="DefaultKeyPrefix"/>
    /// (the same cluster slot as <see cref="KeyOf(long)"/>).</summary>
    public static RedisKey StampsKeyOf(long userId) => StampsKeyOf(DefaultKeyPrefix, userId);

    /// <summary>The hash the stamps of a user's values and removals are kept in, under <paramref name="keyPrefix"/>.</summary>
    public static RedisKey StampsKeyOf(string keyPrefix, long userId) => $"{keyPrefix}:{{{userId.ToString(CultureInfo.InvariantCulture)}}}:stamps";

    /// <inheritdoc />
    public async Task<byte[]?[]> ReadAsync(string field, ReadOnlyMemory<long> users, CancellationToken cancellationToken)
    {
        var database = _connection.GetDatabase(_database);
        var batch = database.CreateBatch();
        var reads = new Task<RedisValue>[users.Length];
        for (int i = 0; i < reads.Length; i++)
        {
            reads[i] = batch.HashGetAsync(KeyOf(KeyPrefix, users.Span[i]), field);
        }

        batch.Execute();
        await WhenAllAnsweredAsync(reads, cancellationToken).ConfigureAwait(false);

        var values = new byte[]?[reads.Length];
        for (int i = 0; i < values.Length; i++)
        {
            if (!reads[i].IsCompletedSuccessfully)
            {
                OnKeyError(KeyOf(KeyPrefix, users.Span[i]), reads[i].Exception!.InnerException!, "read");
                continue;
            }

            var value = reads[i].Result;
            values[i] = value.IsNull ? null : (byte[]?)value;
        }

        return values;
    }

    /// <inheritdoc />
    public async Task<RegionalWriteResult> WriteAsync(IReadOnlyList<RegionalWriteGroup> groups, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(groups);
        var database = _connection.GetDatabase(_database);
        var batch = database.CreateBatch();
        var writes = new Task<RedisResult>[groups.Count];
        for (int i = 0; i < groups.Count; i++)
        {
            var group = groups[i];
            var arguments = new RedisValue[1 + (3 * group.Fields.Count)];
            arguments[0] = Milliseconds(group.TimeToLive);
            for (int f = 0; f < group.Fields.Count; f++)
            {
                var field = group.Fields[f];
                arguments[1 + (3 * f)] = field.Field;
                arguments[2 + (3 * f)] = field.WrittenAtUnixMs;
                arguments[3 + (3 * f)] = field.Value;
            }

            writes[i] = batch.ScriptEvaluateAsync(WriteScript, [KeyOf(KeyPrefix, group.UserId), StampsKeyOf(KeyPrefix, group.UserId)], arguments);
        }

        batch.Execute();
        await WhenAllAnsweredAsync(writes, cancellationToken).ConfigureAwait(false);

        int late = 0, refused = 0;
        for (int i = 0; i < writes.Length; i++)
        {
            if (!writes[i].IsCompletedSuccessfully)
            {
                refused += groups[i].Fields.Count;
                OnKeyError(KeyOf(KeyPrefix, groups[i].UserId), writes[i].Exception!.InnerException!, "write");
                continue;
            }

            late += (int)writes[i].Result;
        }

        return new RegionalWriteResult(late, refused);
    }

    /// <inheritdoc />
    public Task RemoveAsync(long userId, string? field, long removedAtUnixMs, TimeSpan remember, CancellationToken cancellationToken)
    {
        var database = _connection.GetDatabase(_database);
        var removal = database.ScriptEvaluateAsync(
            RemoveScript, [KeyOf(KeyPrefix, userId), StampsKeyOf(KeyPrefix, userId)], [field ?? string.Empty, removedAtUnixMs, Milliseconds(remember)]);
        return removal.WaitAsync(cancellationToken);
    }

    /// <inheritdoc />
    public Task PublishAsync(byte[] message, CancellationToken cancellationToken) =>
        _connection.GetSubscriber().PublishAsync(InvalidationChannel, message).WaitAsync(cancellationToken);

    /// <inheritdoc />
    /// <remarks>Messages are handled in order, one at a time. The subscription counts as lost when the connection that
    /// carries it fails (StackExchange.Redis subscribes again when it reconnects), and as back when it is restored.</remarks>
    public async Task<IAsyncDisposable> SubscribeAsync(Action<byte[]> onMessage, Action<bool> onSubscribed, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(onMessage);
        ArgumentNullException.ThrowIfNull(onSubscribed);
        var subscriber = _connection.GetSubscriber();
        var channel = InvalidationChannel;
        void Failed(object? sender, ConnectionFailedEventArgs e)
        {
            if (e.ConnectionType == ConnectionType.Subscription || !subscriber.IsConnected(channel))
            {
                onSubscribed(false);
            }
        }

        void Restored(object? sender, ConnectionFailedEventArgs e)
        {
            if (e.ConnectionType == ConnectionType.Subscription || subscriber.IsConnected(channel))
            {
                onSubscribed(true);
            }
        }

        _connection.ConnectionFailed += Failed;
        _connection.ConnectionRestored += Restored;
        try
        {
            var queue = await subscriber.SubscribeAsync(channel).WaitAsync(cancellationToken).ConfigureAwait(false);
            queue.OnMessage(message => onMessage((byte[])message.Message!));
            onSubscribed(subscriber.IsConnected(channel));
            return new Subscription(this, queue, Failed, Restored);
        }
        catch
        {
            _connection.ConnectionFailed -= Failed;
            _connection.ConnectionRestored -= Restored;
            throw;
        }
    }

    /// <summary>Whole milliseconds, at least one (an expiry of zero would delete the key at once).</summary>
    private static long Milliseconds(TimeSpan span) => Math.Max(1, (long)Math.Ceiling(span.TotalMilliseconds));

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

    /// <summary>One subscription to <see cref="InvalidationChannel"/>: disposing it unsubscribes.</summary>
    private sealed class Subscription(
        RedisRegionalStore store, ChannelMessageQueue queue, EventHandler<ConnectionFailedEventArgs> failed, EventHandler<ConnectionFailedEventArgs> restored)
        : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            store._connection.ConnectionFailed -= failed;
            store._connection.ConnectionRestored -= restored;
            try
            {
                await queue.UnsubscribeAsync().ConfigureAwait(false);
            }
            catch (RedisException)
            {
                // the connection is gone: so is the subscription
            }
        }
    }
}
