using System.Collections.Concurrent;
using ERCache.Regional;

namespace ERCache.Replay.Replay;

/// <summary>
/// A regional store in this process, with the semantics the cache relies on from Redis: one value per (user, field),
/// a write replaces it, a read returns it or nothing. Values never expire here (a replay is bounded, and the cache
/// checks every value's age itself). For fast sweeps; <c>--regional redis=HOST:PORT</c> uses a real server.
/// </summary>
internal sealed class InMemoryRegionalStore : IRegionalStore
{
    private readonly ConcurrentDictionary<(long User, string Field), byte[]> _values = new();

    public int Count => _values.Count;

    public Task<byte[]?[]> ReadAsync(string field, ReadOnlyMemory<long> users, CancellationToken cancellationToken)
    {
        var values = new byte[]?[users.Length];
        for (int i = 0; i < values.Length; i++)
        {
            values[i] = _values.GetValueOrDefault((users.Span[i], field));
        }

        return Task.FromResult(values);
    }

    public Task WriteAsync(IReadOnlyList<RegionalWriteGroup> groups, CancellationToken cancellationToken)
    {
        foreach (var group in groups)
        {
            foreach (var field in group.Fields)
            {
                _values[(group.UserId, field.Field)] = field.Value;
            }
        }

        return Task.CompletedTask;
    }

    public Task RemoveAsync(long userId, string? field, CancellationToken cancellationToken)
    {
        foreach (var key in _values.Keys)
        {
            if (key.User == userId && (field is null || key.Field == field))
            {
                _values.TryRemove(key, out _);
            }
        }

        return Task.CompletedTask;
    }
}
