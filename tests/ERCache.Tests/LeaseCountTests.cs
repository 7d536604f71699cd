using ERCache.Internal;

namespace ERCache.Tests;

/// <summary>The rules of <see cref="LeaseCount"/> on one thread (the hammer is <see cref="LeaseCountSoak"/>).</summary>
public sealed class LeaseCountTests
{
    [Fact]
    public void Close_with_nothing_in_progress_releases_at_once_and_only_once()
    {
        int releases = 0;
        var leases = new LeaseCount(() => releases++);

        Assert.True(leases.Close());
        Assert.Equal(1, releases);
        Assert.True(leases.IsClosed);
        Assert.False(leases.Close());
        Assert.False(leases.TryAcquire());
        Assert.Equal(1, releases);
    }

    [Fact]
    public void The_last_lease_returned_after_Close_releases_and_none_before_it()
    {
        int releases = 0;
        var leases = new LeaseCount(() => releases++);
        Assert.True(leases.TryAcquire());
        Assert.True(leases.TryAcquire());

        Assert.False(leases.Close());
        Assert.False(leases.TryAcquire()); // nothing new begins once closed
        Assert.Equal(0, releases);

        leases.Release();
        Assert.Equal(0, releases); // one lease still in progress
        leases.Release();
        Assert.Equal(1, releases);
    }

    [Fact]
    public void Leases_returned_before_Close_do_not_release()
    {
        int releases = 0;
        var leases = new LeaseCount(() => releases++);
        for (int i = 0; i < 10; i++)
        {
            Assert.True(leases.TryAcquire());
            leases.Release();
        }

        Assert.Equal(0, releases); // the owner's lease is still out
        Assert.False(leases.IsClosed);
        Assert.True(leases.Close());
        Assert.Equal(1, releases);
    }

    [Fact]
    public async Task A_lease_returned_on_another_thread_counts_as_returned()
    {
        int releases = 0;
        var leases = new LeaseCount(() => Interlocked.Increment(ref releases));
        Assert.True(leases.TryAcquire());
        Assert.False(leases.Close());

        await Task.Factory.StartNew(leases.Release, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

        Assert.Equal(1, releases);
    }
}
