using System.Globalization;
using ERCache.Regional;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using StackExchange.Redis;

namespace ERCache.Redis;

/// <summary>
/// An <see cref="IRegionalStore"/> on Redis or Garnet through StackExchange.Redis. Each value is one string,
/// <c>&lt;prefix&gt;:{&lt;user&gt;}:&lt;field&gt;</c> (the field is the model and its version; the braces are a cluster
/// hash tag, so all of a user's keys share a slot and no command spans slots), expiring with its time to live; the
/// stamps of a user's values and removals live beside them in the hash <c>&lt;prefix&gt;:{&lt;user&gt;}:stamps</c>. The
/// prefix (<see cref="KeyPrefix"/>, default <c>ercache</c>) is the namespace: stores with different prefixes share
/// nothing, not even the invalidation channel. A lookup sends one <c>GETRANGE</c> per user, pipelined in one batch, so
/// the server never sends more than the model's value length and one byte of a value (one of megabytes written there
/// by something else cannot hold up the other users' answers on the connection); a key the server refuses to read is
/// that user's miss. A write is one Lua script per user (newer wins: a field is set only when its stamp is later than
/// the stamp held for it and than the user's last removal, atomically on the server), pipelined in one batch. A removal
/// of one field is one script (delete, then remember the removal's stamp); a removal of the user is two round trips
/// (remember the removal, which refuses every older write from then on, and learn the user's fields; then delete the
/// values of those fields not written since). Valid on Redis, Redis Cluster and Garnet started with <c>--lua --lua-transaction-mode</c>
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
    // KEYS: stamps, then the value key of each field. ARGV: time to live (ms), then (field, stamp, value) per field.
    // Returns the fields not written.
    private const string WriteScript = """
        local never = -9007199254740991
        local removed = tonumber(redis.call('HGET', KEYS[1], '*') or never)
        local late, written = 0, 0
        for f = 1, #KEYS - 1 do
          local at = 3 * f - 1
          local stamp = tonumber(ARGV[at + 1])
          local held = tonumber(redis.call('HGET', KEYS[1], ARGV[at]) or never)
          if stamp > held and stamp > removed then
            redis.call('SET', KEYS[f + 1], ARGV[at + 2], 'PX', ARGV[1])
            redis.call('HSET', KEYS[1], ARGV[at], ARGV[at + 1])
            written = written + 1
          else
            late = late + 1
          end
        end
        if written > 0 and redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
        return late
        """;

    // Deletes the field's value (when its key is given) and remembers the removal's stamp under the field, or under '*'
    // for the user. KEYS: stamps[, value]. ARGV: field or '*', the removal's stamp, how long to remember it (ms).
    // Returns the fields the user has stamps for (what a removal of the user must delete next).
    private const string RemoveScript = """
        local never = -9007199254740991
        if #KEYS > 1 then redis.call('DEL', KEYS[2]) end
        local held = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or never)
        if tonumber(ARGV[2]) > held then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
        if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[3]) then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
        if #KEYS > 1 then return {} end
        return redis.call('HKEYS', KEYS[1])
        """;

    // Deletes the values of a removed user that are not newer than the removal. KEYS: stamps, then one value key per
    // field. ARGV: the removal's stamp, then the fields.
    private const string DeleteOlderScript = """
        for f = 2, #KEYS do
          local held = tonumber(redis.call('HGET', KEYS[1], ARGV[f]) or ARGV[1])
          if held <= tonumber(ARGV[1]) then redis.call('DEL', KEYS[f]) end
        end
        return 1
        """;

    private const string UserField = "*"; // the stamp of a removal of the user: a field always holds a ':'

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

    /// <summary>The string a user's value of <paramref name="field"/> (a model and its version) is kept in, under
    /// <see cref="DefaultKeyPrefix"/>.</summary>
    public static RedisKey ValueKeyOf(long userId, string field) => ValueKeyOf(DefaultKeyPrefix, userId, field);

    /// <summary>The string a user's value of <paramref name="field"/> (a model and its version) is kept in, under
    /// <paramref name="keyPrefix"/>.</summary>
    public static RedisKey ValueKeyOf(string keyPrefix, long userId, string field) =>
        $"{keyPrefix}:{{{userId.ToString(CultureInfo.InvariantCulture)}}}:{field}";

    /// <summary>The hash the stamps of a user's values and removals are kept in, under <see cref="DefaultKeyPrefix"/>
    /// (the same cluster slot as the user's values).</summary>
    public static RedisKey StampsKeyOf(long userId) => StampsKeyOf(DefaultKeyPrefix, userId);

    /// <summary>The hash the stamps of a user's values and removals are kept in, under <paramref name="keyPrefix"/>.</summary>
    public static RedisKey StampsKeyOf(string keyPrefix, long userId) => $"{keyPrefix}:{{{userId.ToString(CultureInfo.InvariantCulture)}}}:stamps";

    /// <inheritdoc />
    public async Task<byte[]?[]> ReadAsync(string field, ReadOnlyMemory<long> users, int valueBytes, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(field);
        ArgumentOutOfRangeException.ThrowIfNegative(valueBytes);
        var database = _connection.GetDatabase(_database);
        var batch = database.CreateBatch();
        var reads = new Task<RedisValue>[users.Length];
        for (int i = 0; i < reads.Length; i++)
        {
            // GETRANGE's end is inclusive: one byte more than a value of the caller's shows that a value is too long.
            reads[i] = batch.StringGetRangeAsync(ValueKeyOf(KeyPrefix, users.Span[i], field), 0, valueBytes);
        }

        batch.Execute();
        await WhenAllAnsweredAsync(reads, cancellationToken).ConfigureAwait(false);

        var values = new byte[]?[reads.Length];
        for (int i = 0; i < values.Length; i++)
        {
            if (!reads[i].IsCompletedSuccessfully)
            {
                OnKeyError(ValueKeyOf(KeyPrefix, users.Span[i], field), reads[i].Exception!.InnerException!, "read");
                continue;
            }

            var value = reads[i].Result;
            values[i] = value.IsNullOrEmpty ? null : (byte[]?)value; // GETRANGE of a missing key is empty
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
            var keys = new RedisKey[1 + group.Fields.Count];
            var arguments = new RedisValue[1 + (3 * group.Fields.Count)];
            keys[0] = StampsKeyOf(KeyPrefix, group.UserId);
            arguments[0] = Milliseconds(group.TimeToLive);
            for (int f = 0; f < group.Fields.Count; f++)
            {
                var field = group.Fields[f];
                keys[1 + f] = ValueKeyOf(KeyPrefix, group.UserId, field.Field);
                arguments[1 + (3 * f)] = field.Field;
                arguments[2 + (3 * f)] = field.WrittenAtUnixMs;
                arguments[3 + (3 * f)] = field.Value;
            }

            writes[i] = batch.ScriptEvaluateAsync(WriteScript, keys, arguments);
        }

        batch.Execute();
        await WhenAllAnsweredAsync(writes, cancellationToken).ConfigureAwait(false);

        int late = 0, refused = 0;
        for (int i = 0; i < writes.Length; i++)
        {
            if (!writes[i].IsCompletedSuccessfully)
            {
                refused += groups[i].Fields.Count;
                OnKeyError(StampsKeyOf(KeyPrefix, groups[i].UserId), writes[i].Exception!.InnerException!, "write");
                continue;
            }

            late += (int)writes[i].Result;
        }

        return new RegionalWriteResult(late, refused);
    }

    /// <inheritdoc />
    /// <remarks>A removal of the user takes two round trips: the first remembers it (from then on no write stamped at
    /// or before it lands) and returns the user's fields, the second deletes their values unless a newer write has
    /// replaced them since.</remarks>
    public async Task RemoveAsync(long userId, string? field, long removedAtUnixMs, TimeSpan remember, CancellationToken cancellationToken)
    {
        var database = _connection.GetDatabase(_database);
        var stamps = StampsKeyOf(KeyPrefix, userId);
        RedisKey[] keys = field is null ? [stamps] : [stamps, ValueKeyOf(KeyPrefix, userId, field)];
        var fields = await database.ScriptEvaluateAsync(RemoveScript, keys, [field ?? UserField, removedAtUnixMs, Milliseconds(remember)])
            .WaitAsync(cancellationToken).ConfigureAwait(false);
        var written = ((RedisValue[])fields!).Where(f => f != UserField).ToArray();
        if (written.Length == 0)
        {
            return;
        }

        RedisKey[] values = [stamps, .. written.Select(f => ValueKeyOf(KeyPrefix, userId, f!))];
        RedisValue[] arguments = [removedAtUnixMs, .. written];
        await database.ScriptEvaluateAsync(DeleteOlderScript, values, arguments).WaitAsync(cancellationToken).ConfigureAwait(false);
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
