using System.Collections.Concurrent;
using ERCache.Regional;

namespace ERCache.Testing;

/// <summary>
/// An <see cref="IRegionalStore"/> in this process, with the semantics the cache relies on from Redis or Garnet: one
/// value per (user, field); a write replaces it only when it is stamped later than the value held and than any
/// removal of the field or the user still remembered (newer wins), and sets the user's time to live; a read returns it,
/// or nothing once it expired; a removal deletes one field or the user's whole entry and remembers its stamp. For unit
/// tests of code that uses a regional tier, and for simulations; it shares nothing between processes.
/// </summary>
/// <remarks>Expiry is read from the <see cref="TimeProvider"/> given at construction, so a test's
/// <c>FakeTimeProvider</c> drives it; without one, values never expire (the cache checks every value's age itself, so
/// only memory grows). Every call completes synchronously; a test that needs a slow or failing store wraps this
/// one.</remarks>
public sealed class InMemoryRegionalStore : IRegionalStore, IRegionalInvalidation
{
    private const string AllFields = "*"; // a removal of the user: field names always hold a ':'

    private readonly ConcurrentDictionary<(long User, string Field), (byte[] Value, long Stamp, DateTimeOffset ExpiresAt)> _values = new();
    private readonly ConcurrentDictionary<(long User, string Field), (long Stamp, DateTimeOffset ExpiresAt)> _removed = new();
    private readonly Lock _writing = new(); // a write or removal of one user is atomic, as a script on the server
    private readonly List<Subscriber> _subscribers = []; // under itself
    private bool _channelDown;
    private readonly TimeProvider? _time;
    private int _reads;
    private int _writes;
    private int _removals;
    private int _published;

    /// <summary>Creates an empty store whose values expire on <paramref name="timeProvider"/>'s wall clock, or never
    /// when it is null.</summary>
    public InMemoryRegionalStore(TimeProvider? timeProvider = null) => _time = timeProvider;

    /// <summary>Values held now, expired ones included until they are read or replaced.</summary>
    public int Count => _values.Count;

    /// <summary>Times <see cref="ReadAsync"/>, <see cref="WriteAsync"/> and <see cref="RemoveAsync"/> were called.</summary>
    public int Reads => Volatile.Read(ref _reads);

    /// <inheritdoc cref="Reads"/>
    public int Writes => Volatile.Read(ref _writes);

    /// <inheritdoc cref="Reads"/>
    public int Removals => Volatile.Read(ref _removals);

    /// <summary>The value held for <paramref name="userId"/> in <paramref name="field"/>, or null (absent or expired).</summary>
    public byte[]? Get(long userId, string field)
    {
        ArgumentNullException.ThrowIfNull(field);
        return _values.TryGetValue((userId, field), out var entry) && (_time is null || entry.ExpiresAt > _time.GetUtcNow()) ? entry.Value : null;
    }

    /// <summary>Stores <paramref name="value"/> as it is, unstamped (a test writing garbage, or another host's value): any
    /// later write replaces it.</summary>
    public void Set(long userId, string field, byte[] value, TimeSpan timeToLive)
    {
        ArgumentNullException.ThrowIfNull(field);
        ArgumentNullException.ThrowIfNull(value);
        lock (_writing)
        {
            _values[(userId, field)] = (value, long.MinValue, ExpiresAt(timeToLive));
        }
    }

    /// <inheritdoc />
    /// <remarks>A value longer than <paramref name="valueBytes"/> is returned cut to <paramref name="valueBytes"/> + 1
    /// bytes, as Redis returns it.</remarks>
    public Task<byte[]?[]> ReadAsync(string field, ReadOnlyMemory<long> users, int valueBytes, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(field);
        ArgumentOutOfRangeException.ThrowIfNegative(valueBytes);
        if (cancellationToken.IsCancellationRequested)
        {
            return Task.FromCanceled<byte[]?[]>(cancellationToken);
        }

        Interlocked.Increment(ref _reads);
        var values = new byte[]?[users.Length];
        for (int i = 0; i < values.Length; i++)
        {
            var value = Get(users.Span[i], field);
            values[i] = value is not null && value.Length > valueBytes ? value[..(valueBytes + 1)] : value;
        }

        return Task.FromResult(values);
    }

    /// <inheritdoc />
    public Task<RegionalWriteResult> WriteAsync(IReadOnlyList<RegionalWriteGroup> groups, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(groups);
        if (cancellationToken.IsCancellationRequested)
        {
            return Task.FromCanceled<RegionalWriteResult>(cancellationToken);
        }

        Interlocked.Increment(ref _writes);
        int late = 0;
        lock (_writing)
        {
            foreach (var group in groups)
            {
                long removedAt = Remembered(group.UserId, AllFields);
                foreach (var field in group.Fields)
                {
                    long newest = Math.Max(removedAt, Remembered(group.UserId, field.Field));
                    if (_values.TryGetValue((group.UserId, field.Field), out var held) && Live(held.ExpiresAt))
                    {
                        newest = Math.Max(newest, held.Stamp);
                    }

                    if (field.WrittenAtUnixMs > newest)
                    {
                        _values[(group.UserId, field.Field)] = (field.Value, field.WrittenAtUnixMs, ExpiresAt(group.TimeToLive));
                    }
                    else
                    {
                        late++;
                    }
                }
            }
        }

        return Task.FromResult(new RegionalWriteResult(late, Refused: 0));
    }

    /// <inheritdoc />
    public Task RemoveAsync(long userId, string? field, long removedAtUnixMs, TimeSpan remember, CancellationToken cancellationToken)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return Task.FromCanceled(cancellationToken);
        }

        Interlocked.Increment(ref _removals);
        lock (_writing)
        {
            foreach (var key in _values.Keys)
            {
                if (key.User == userId && (field is null || key.Field == field))
                {
                    _values.TryRemove(key, out _);
                }
            }

            string removedField = field ?? AllFields;
            if (Remembered(userId, removedField) < removedAtUnixMs)
            {
                _removed[(userId, removedField)] = (removedAtUnixMs, ExpiresAt(remember));
            }
        }

        return Task.CompletedTask;
    }

    private long Remembered(long userId, string field) =>
        _removed.TryGetValue((userId, field), out var removal) && Live(removal.ExpiresAt) ? removal.Stamp : long.MinValue;

    private bool Live(DateTimeOffset expiresAt) => _time is null || expiresAt > _time.GetUtcNow();

    private DateTimeOffset ExpiresAt(TimeSpan timeToLive) => _time is null ? DateTimeOffset.MaxValue : _time.GetUtcNow() + timeToLive;

    /// <summary>Messages published on the invalidation channel so far (delivered or not).</summary>
    public int Published => Volatile.Read(ref _published);

    /// <inheritdoc />
    /// <remarks>Delivered to every subscriber on the publisher's thread before this returns (none while the channel is
    /// down: they are lost, as on a real store).</remarks>
    public Task PublishAsync(byte[] message, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(message);
        if (cancellationToken.IsCancellationRequested)
        {
            return Task.FromCanceled(cancellationToken);
        }

        Interlocked.Increment(ref _published);
        Subscriber[] subscribers;
        lock (_subscribers)
        {
            subscribers = _channelDown ? [] : [.. _subscribers];
        }

        foreach (var subscriber in subscribers)
        {
            subscriber.OnMessage(message);
        }

        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public Task<IAsyncDisposable> SubscribeAsync(Action<byte[]> onMessage, Action<bool> onSubscribed, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(onMessage);
        ArgumentNullException.ThrowIfNull(onSubscribed);
        var subscriber = new Subscriber(this, onMessage, onSubscribed);
        bool down;
        lock (_subscribers)
        {
            _subscribers.Add(subscriber);
            down = _channelDown;
        }

        onSubscribed(!down);
        return Task.FromResult<IAsyncDisposable>(subscriber);
    }

    /// <summary>Takes the invalidation channel down (<paramref name="down"/>) or back up: every subscriber is told, and
    /// messages published while it is down reach nobody. For tests of a lost subscription.</summary>
    public void SetChannelDown(bool down)
    {
        Subscriber[] subscribers;
        lock (_subscribers)
        {
            _channelDown = down;
            subscribers = [.. _subscribers];
        }

        foreach (var subscriber in subscribers)
        {
            subscriber.OnSubscribed(!down);
        }
    }

    private sealed class Subscriber(InMemoryRegionalStore store, Action<byte[]> onMessage, Action<bool> onSubscribed) : IAsyncDisposable
    {
        public Action<byte[]> OnMessage { get; } = onMessage;

        public Action<bool> OnSubscribed { get; } = onSubscribed;

        public ValueTask DisposeAsync()
        {
            lock (store._subscribers)
            {
                store._subscribers.Remove(this);
            }

            return ValueTask.CompletedTask;
        }
    }
}
