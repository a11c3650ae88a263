import GuestFS
print("imagemount")
