using ERCache.Internal;
using ERCache.Tests.Infrastructure;

namespace ERCache.Tests;

/// <summary><see cref="LeaseCount"/> under threads that take and return leases while the owner closes it.</summary>
[Collection(SoakDefinition.Name)]
public sealed class LeaseCountSoak
{
    [Fact]
    public async Task Hammer_the_resources_are_released_exactly_once_and_only_after_every_lease_returned()
    {
        for (int round = 0; round < 200; round++)
        {
            var leases = new LeaseCount();
            int held = 0, releases = 0, heldAtRelease = -1, acquiredAfterClose = 0;
            using var start = new ManualResetEventSlim();

            void Released()
            {
                Interlocked.Increment(ref releases);
                heldAtRelease = Volatile.Read(ref held);
            }

            var workers = Enumerable.Range(0, 4).Select(_ => Task.Run(() =>
            {
                start.Wait();
                for (int i = 0; i < 2000; i++)
                {
                    bool closedBefore = leases.IsClosed;
                    if (!leases.TryAcquire())
                    {
                        continue;
                    }

                    if (closedBefore)
                    {
                        Interlocked.Increment(ref acquiredAfterClose);
                    }

                    Interlocked.Increment(ref held);
                    Interlocked.Decrement(ref held);
                    if (leases.Release())
                    {
                        Released();
                    }
                }
            })).ToArray();

            var closer = Task.Run(() =>
            {
                start.Wait();
                Thread.SpinWait(50 * round);
                if (leases.Close())
                {
                    Released();
                }

                Assert.False(leases.Close()); // once only
            });

            start.Set();
            await Task.WhenAll([.. workers, closer]);

            Assert.Equal(1, releases);
            Assert.Equal(0, heldAtRelease);
            Assert.Equal(0, acquiredAfterClose);
            Assert.False(leases.TryAcquire());
        }
    }
}
