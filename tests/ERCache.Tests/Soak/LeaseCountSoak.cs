using System.Collections.Concurrent;
using ERCache.Internal;
using ERCache.Tests.Infrastructure;

namespace ERCache.Tests;

/// <summary><see cref="LeaseCount"/> under threads that take and return leases while the owner closes it.</summary>
[Collection(SoakDefinition.Name)]
public sealed class LeaseCountSoak
{
    /// <summary>Half the leases are returned by the thread that took them, half by another thread (as a miss's are when
    /// its inference runs on a dispatcher thread), so takes and returns land on different stripes.</summary>
    [Fact]
    public async Task Hammer_the_resources_are_released_exactly_once_and_only_after_every_lease_returned()
    {
        for (int round = 0; round < 200; round++)
        {
            int held = 0, releases = 0, heldAtRelease = -1, acquiredAfterClose = 0, acquiredAfterRelease = 0;
            var leases = new LeaseCount(() =>
            {
                Interlocked.Increment(ref releases);
                heldAtRelease = Volatile.Read(ref held);
            });
            var handedOver = new BlockingCollection<int>();
            using var start = new ManualResetEventSlim();

            var workers = Enumerable.Range(0, 3).Select(w => Task.Run(() =>
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

                    if (Volatile.Read(ref releases) != 0)
                    {
                        Interlocked.Increment(ref acquiredAfterRelease); // work beginning on released resources
                    }

                    Interlocked.Increment(ref held);
                    if ((i & 1) == 0)
                    {
                        handedOver.Add(i); // returned by the other thread
                        continue;
                    }

                    Interlocked.Decrement(ref held);
                    leases.Release();
                }
            })).ToArray();
            var returner = Task.Run(() =>
            {
                foreach (int _ in handedOver.GetConsumingEnumerable())
                {
                    Interlocked.Decrement(ref held);
                    leases.Release();
                }
            });

            bool closedFirst = false;
            var closer = Task.Run(() =>
            {
                start.Wait();
                Thread.SpinWait(50 * round);
                closedFirst = leases.Close();
                Assert.False(leases.Close()); // once only
            });

            start.Set();
            await Task.WhenAll([.. workers, closer]);
            handedOver.CompleteAdding();
            await returner;

            Assert.Equal(1, releases);
            Assert.Equal(0, heldAtRelease);
            Assert.Equal(0, acquiredAfterClose);
            Assert.Equal(0, acquiredAfterRelease);
            Assert.False(leases.TryAcquire());
            Assert.Equal(0, Volatile.Read(ref held));
            _ = closedFirst; // either may release: Close when nothing was held, else the last return
        }
    }

    /// <summary>One thread takes and returns leases as fast as it can while another closes, round after round: a take
    /// that lands between the close's total and its release must fail, or work would begin on released resources. Each
    /// round's close lands at a different point of the taker's loop.</summary>
    [Fact]
    public void Hammer_a_take_racing_Close_never_succeeds_once_released()
    {
        const int Rounds = 20_000;
        LeaseCount? leases = null;
        int released = 0, round = 0, takerRound = 0, violations = 0;
        var taker = CheckedThread.Start(() =>
        {
            for (int r = 1; r <= Rounds; r++)
            {
                while (Volatile.Read(ref round) != r)
                {
                }

                var current = Volatile.Read(ref leases)!;
                Volatile.Write(ref takerRound, r);
                while (current.TryAcquire())
                {
                    if (Volatile.Read(ref released) == r)
                    {
                        violations++;
                    }

                    current.Release();
                }
            }
        });
        for (int r = 1; r <= Rounds && taker.IsAlive; r++) // a taker that threw ends the rounds; its Join says why
        {
            int thisRound = r;
            Volatile.Write(ref leases, new LeaseCount(() => Volatile.Write(ref released, thisRound)));
            Volatile.Write(ref round, r);
            while (Volatile.Read(ref takerRound) != r && taker.IsAlive)
            {
            }

            Thread.SpinWait(r % 64); // vary where in the taker's loop the close lands
            leases!.Close();
        }

        Assert.True(taker.Join(TimeSpan.FromSeconds(60)));
        Assert.Equal(Rounds, Volatile.Read(ref released)); // every round released, by the close or by the taker's return
        Assert.Equal(0, violations);
    }
}
