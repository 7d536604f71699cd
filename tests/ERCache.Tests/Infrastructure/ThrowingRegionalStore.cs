using ERCache.Regional;

namespace ERCache.Tests.Infrastructure;

/// <summary>A regional store that is down: every call fails with an <see cref="IOException"/>.</summary>
internal sealed class ThrowingRegionalStore : IRegionalStore
{
    public Task<byte[]?[]> ReadAsync(string field, ReadOnlyMemory<long> users, int valueBytes, CancellationToken cancellationToken) =>
        Task.FromException<byte[]?[]>(new IOException("store down"));

    public Task<RegionalWriteResult> WriteAsync(IReadOnlyList<RegionalWriteGroup> groups, CancellationToken cancellationToken) =>
        Task.FromException<RegionalWriteResult>(new IOException("store down"));

    public Task RemoveAsync(long userId, string? field, long removedAtUnixMs, TimeSpan remember, CancellationToken cancellationToken) =>
        Task.FromException(new IOException("store down"));
}
