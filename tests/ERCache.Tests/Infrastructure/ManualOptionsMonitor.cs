using Microsoft.Extensions.Options;

namespace ERCache.Tests.Infrastructure;

/// <summary>An options monitor whose change the test raises, on the test's thread.</summary>
internal sealed class ManualOptionsMonitor(ERCacheOptions current) : IOptionsMonitor<ERCacheOptions>
{
    private Action<ERCacheOptions, string?>? _listener;

    public ERCacheOptions CurrentValue { get; private set; } = current;

    public ERCacheOptions Get(string? name) => CurrentValue;

    public IDisposable OnChange(Action<ERCacheOptions, string?> listener)
    {
        _listener = listener;
        return new Unsubscribe(this);
    }

    public void Raise(ERCacheOptions options)
    {
        CurrentValue = options;
        _listener?.Invoke(options, Options.DefaultName);
    }

    private sealed class Unsubscribe(ManualOptionsMonitor owner) : IDisposable
    {
        public void Dispose() => owner._listener = null;
    }
}
