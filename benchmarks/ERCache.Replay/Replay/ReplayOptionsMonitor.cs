using Microsoft.Extensions.Options;

namespace ERCache.Replay.Replay;

/// <summary>A host's configuration as the library follows it: the timeline changes it (a new <c>Version</c>) through
/// <see cref="Set"/>, and the cache applies it as it applies a reload in production.</summary>
internal sealed class ReplayOptionsMonitor(ERCacheOptions options) : IOptionsMonitor<ERCacheOptions>
{
    private readonly List<Action<ERCacheOptions, string?>> _listeners = [];

    public ERCacheOptions CurrentValue { get; private set; } = options;

    public ERCacheOptions Get(string? name) => CurrentValue;

    public IDisposable OnChange(Action<ERCacheOptions, string?> listener)
    {
        _listeners.Add(listener);
        return new Subscription(() => _listeners.Remove(listener));
    }

    /// <summary>Makes <paramref name="next"/> current and tells every listener, as a configuration reload does.</summary>
    public void Set(ERCacheOptions next)
    {
        CurrentValue = next;
        foreach (var listener in _listeners.ToArray())
        {
            listener(next, Options.DefaultName);
        }
    }

    private sealed class Subscription(Action dispose) : IDisposable
    {
        public void Dispose() => dispose();
    }
}
